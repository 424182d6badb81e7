"""GeoPackage polygon layers with Python's sqlite3, for when GDAL's bindings are missing.

The rasterio backend cannot write vectors (rasterio has no vector API), so it writes
GeoPackages as the OGC standard (12-128r18, version 1.2) lays them out: the three required
metadata tables, one feature table, and geometries as a ``GP`` header with an envelope followed
by WKB. GDAL, QGIS and every GeoPackage reader open them; the GDAL backend uses OGR instead.
Hand-written because rasterio has no vector API and pyogrio or fiona would load a second GDAL
build into the process beside rasterio's; the subset written here (one polygon layer, its
spatial reference, an envelope per geometry) is small and is read back by GDAL in the tests.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import RasterError
from ..geo.geometry import Polygon, from_wkb, to_wkb
from ..geo.georef import Crs

#: ``PRAGMA application_id`` of GeoPackages ("GPKG") and the version in ``user_version``.
_APPLICATION_ID, _USER_VERSION = 0x47504B47, 10200
#: Features per transaction.
_BATCH = 2000
_SQL_TYPES = {"int": "INTEGER", "real": "REAL", "str": "TEXT"}
_CORE = """
CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
  organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
  identifier TEXT UNIQUE, description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL,
  m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
INSERT INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system');
"""  # noqa: E501
_WGS84 = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)


class GpkgWriter:
    """One multipolygon layer in a new GeoPackage (see :class:`.raster_io.FeatureWriter`)."""

    def __init__(
        self, path: Path, layer: str, crs: Crs | None, fields: Sequence[tuple[str, str]]
    ) -> None:
        self.count = 0
        self._layer = layer
        self._fields = [name for name, _ in fields]
        self._db = sqlite3.connect(str(path))
        db = self._db
        db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {_USER_VERSION}")
        db.executescript(_CORE)
        db.execute(
            "INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84', 4326, 'EPSG', 4326, ?, NULL)",
            (_WGS84,),
        )
        self._srs_id = -1
        if crs is not None:
            self._srs_id = crs.epsg if crs.epsg is not None else 100000
            if self._srs_id != 4326:
                db.execute(
                    "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, NULL)",
                    (crs.to_string() if crs.epsg else "custom", self._srs_id,
                     "EPSG" if crs.epsg else "NONE", self._srs_id, crs.wkt),
                )  # fmt: skip
        columns = ", ".join(f'"{n}" {_SQL_TYPES[k]}' for n, k in fields)
        db.execute(
            f'CREATE TABLE "{layer}" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
            f"geom MULTIPOLYGON{', ' + columns if columns else ''})"
        )
        db.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
            "VALUES (?, 'features', ?, ?)",
            (layer, layer, self._srs_id),
        )
        db.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'MULTIPOLYGON', ?, 0, 0)",
            (layer, self._srs_id),
        )
        names = ", ".join(f'"{n}"' for n in ["geom", *self._fields])
        marks = ", ".join("?" * (1 + len(self._fields)))
        self._insert = f'INSERT INTO "{layer}" ({names}) VALUES ({marks})'
        self._rows: list[tuple] = []
        self._bounds = [np.inf, np.inf, -np.inf, -np.inf]

    def add(self, polygon: Polygon | None, **values: object) -> None:
        if polygon is None:  # a null geometry (a catalogue row of an unreadable scene)
            self._rows.append((None, *(values.get(n) for n in self._fields)))
            self.count += 1
            return
        xy = polygon[0]
        box = (xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max())
        b = self._bounds
        b[:] = [min(b[0], box[0]), min(b[1], box[2]), max(b[2], box[1]), max(b[3], box[3])]
        header = struct.pack("<2sBBi4d", b"GP", 0, 0b011, self._srs_id, *box)  # LE, xy envelope
        self._rows.append((header + to_wkb(polygon), *(values.get(n) for n in self._fields)))
        self.count += 1
        if len(self._rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany(self._insert, self._rows)
        self._rows.clear()

    def close(self) -> None:
        if self._db is None:
            return
        self._flush()
        if np.isfinite(self._bounds).all():  # some feature had a geometry
            self._db.execute(
                "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? "
                "WHERE table_name = ?",
                (*(float(v) for v in self._bounds), self._layer),
            )
        self._db.commit()
        self._db.close()
        self._db = None


def read_layers(path: Path) -> tuple[list[Polygon], str | None]:
    """Polygons of every feature layer of a GeoPackage and the WKT of the first layer's CRS.

    Raises:
        RasterError: not a GeoPackage.
    """
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = db.execute(
            "SELECT g.table_name, g.column_name, s.definition, s.srs_id FROM gpkg_geometry_columns "
            "g JOIN gpkg_spatial_ref_sys s ON g.srs_id = s.srs_id"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise RasterError(f"{path} is not a GeoPackage ({exc})") from exc
    polygons: list[Polygon] = []
    wkt = None
    try:
        for table, column, definition, srs_id in tables:
            if wkt is None and srs_id > 0 and definition != "undefined":
                wkt = definition
            for (blob,) in db.execute(f'SELECT "{column}" FROM "{table}"'):
                if blob is not None:
                    polygons += from_wkb(blob[_header_size(blob) :])
    finally:
        db.close()
    return polygons, wkt


def _header_size(blob: bytes) -> int:
    """Bytes of a GeoPackage geometry header: 8, plus the envelope its flags announce."""
    envelope = (blob[3] >> 1) & 0b111
    return 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[envelope]

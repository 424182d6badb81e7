"""Area of interest: a bounding box in any CRS, GeoJSON-like polygons, or a vector file.

The area becomes a window of the read grid (only that part of the raster is swept) and, for
anything that is not a box in the raster's own CRS, polygons in the raster CRS that mask each
tile (pixels outside become output nodata).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.features import bounds as geometry_bounds
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from rasterio.windows import from_bounds

from ..errors import InputError, RasterError
from .geodesy import apply, compose
from .notes import Notes

AreaOfInterest = tuple[float, float, float, float] | dict | str | os.PathLike


@dataclass
class Region:
    """The part of the read grid a run sweeps.

    Attributes:
        row, col, height, width: the window in the read grid.
        transform: affine transform of the window's top-left pixel.
        geometries: polygons (GeoJSON dicts in the grid's CRS) that mask it, or empty.
    """

    row: int
    col: int
    height: int
    width: int
    transform: Affine
    geometries: list[dict] = field(default_factory=list)

    def mask(self, row: int, col: int, height: int, width: int) -> np.ndarray | None:
        """True inside the area for a window given in region offsets; None when all is inside."""
        if not self.geometries:
            return None
        t = compose(self.transform, Affine.translation(col, row))
        return geometry_mask(self.geometries, out_shape=(height, width), transform=t, invert=True)


def resolve_aoi(
    aoi: AreaOfInterest | None,
    aoi_crs: str | CRS | None,
    crs: CRS | None,
    transform: Affine,
    width: int,
    height: int,
    notes: Notes,
) -> Region:
    """Window (and mask polygons) of the read grid covered by ``aoi``.

    Args:
        aoi: None (whole raster); ``(xmin, ymin, xmax, ymax)``; a GeoJSON geometry, feature or
            feature collection; or the path of a vector file with polygons.
        aoi_crs: CRS of a box or GeoJSON ``aoi`` (default: the raster's); vector files carry
            their own.
        crs, transform, width, height: the read grid.
        notes: receives assumptions.

    Raises:
        InputError: an area that misses the raster, has no polygons or an unknown CRS.
    """
    if aoi is None:
        return Region(0, 0, height, width, transform)
    src_crs = _crs(aoi_crs) if aoi_crs is not None else crs
    if isinstance(aoi, (str, os.PathLike)):
        geoms, file_crs = read_polygons(Path(aoi))
        if file_crs is None:
            notes.warn(f"area file {aoi} has no CRS; assumed the raster's")
        src_crs = file_crs or crs
        what = f"area file {Path(aoi).name}"
    elif isinstance(aoi, dict):
        geoms = _geojson_polygons(aoi)
        what = "area polygons"
    else:
        box = tuple(float(v) for v in aoi)
        if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
            raise InputError(f"area of interest {aoi} must be (xmin, ymin, xmax, ymax)")
        what = f"area {box}"
        if src_crs == crs:
            return _region(box, [], crs, transform, width, height, what, src_crs)
        geoms = [_densified_box(box)]
    if src_crs is not None and crs is not None and src_crs != crs:
        geoms = [transform_geom(src_crs, crs, g) for g in geoms]
    box = _union_bounds(geoms)
    return _region(box, geoms, crs, transform, width, height, what, src_crs)


def read_polygons(path: Path) -> tuple[list[dict], CRS | None]:
    """Polygons of every layer of a vector file (GDAL/OGR), as GeoJSON dicts, and their CRS."""
    from osgeo import ogr  # GDAL's bindings: shipped by QGIS, needed for vector files only

    ogr.UseExceptions()
    if not path.exists():
        raise RasterError(f"area file {path} does not exist")
    try:
        ds = ogr.Open(str(path))
    except RuntimeError as exc:
        raise RasterError(f"area file {path} is not a vector file GDAL can read ({exc})") from exc
    geoms: list[dict] = []
    crs = None
    for layer in ds:
        srs = layer.GetSpatialRef()
        if srs is not None and crs is None:
            crs = CRS.from_wkt(srs.ExportToWkt())
        for feature in layer:
            g = feature.GetGeometryRef()
            if g is not None and ogr.GT_Flatten(g.GetGeometryType()) in (
                ogr.wkbPolygon,
                ogr.wkbMultiPolygon,
            ):
                geoms.append(json.loads(g.ExportToJson()))
    if not geoms:
        raise InputError(f"area file {path} holds no polygons")
    return geoms, crs


def _crs(value: str | CRS) -> CRS:
    try:
        return value if isinstance(value, CRS) else CRS.from_user_input(value)
    except CRSError as exc:
        raise InputError(f"unknown CRS {value!r} for the area of interest ({exc})") from exc


def _geojson_polygons(obj: dict[str, Any]) -> list[dict]:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        return [g for f in obj.get("features", []) for g in _geojson_polygons(f)]
    if kind == "Feature":
        return _geojson_polygons(obj.get("geometry") or {})
    if kind in ("Polygon", "MultiPolygon"):
        return [obj]
    raise InputError(f"area of interest must be polygons, got GeoJSON {kind!r}")


def _densified_box(box: tuple[float, ...], n: int = 21) -> dict:
    """A box as a polygon with ``n`` points per side, so it stays a fair shape once reprojected."""
    x0, y0, x1, y1 = box
    t = np.linspace(0.0, 1.0, n)[:-1]
    up, down = t, 1.0 - t
    xs = np.concatenate([x0 + (x1 - x0) * up, [x1] * len(t), x0 + (x1 - x0) * down, [x0] * len(t)])
    ys = np.concatenate([[y0] * len(t), y0 + (y1 - y0) * up, [y1] * len(t), y0 + (y1 - y0) * down])
    ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def _union_bounds(geoms: list[dict]) -> tuple[float, float, float, float]:
    b = np.array([geometry_bounds(g) for g in geoms])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _region(
    box: tuple[float, ...],
    geoms: list[dict],
    crs: CRS | None,
    transform: Affine,
    width: int,
    height: int,
    what: str,
    box_crs: CRS | None,
) -> Region:
    win = from_bounds(*box, transform=transform)
    # Outward to whole pixels; the epsilon keeps float noise (20.0000001) from adding a pixel.
    eps = 1e-6
    col0 = max(0, math.floor(win.col_off + eps))
    row0 = max(0, math.floor(win.row_off + eps))
    col1 = min(width, math.ceil(win.col_off + win.width - eps))
    row1 = min(height, math.ceil(win.row_off + win.height - eps))
    if col1 - col0 < 1 or row1 - row0 < 1:
        where = f" (CRS {box_crs.to_string()})" if box_crs is not None else ""
        raise InputError(
            f"the {what}{where} does not overlap the raster, whose grid spans "
            f"{tuple(round(v, 6) for v in _grid_bounds(transform, width, height))}"
            f"{f' in {crs.to_string()}' if crs else ' (pixel space)'}"
        )
    origin = compose(transform, Affine.translation(col0, row0))
    return Region(row0, col0, row1 - row0, col1 - col0, origin, geoms)


def _grid_bounds(transform: Affine, width: int, height: int) -> tuple[float, ...]:
    corners = [apply(transform, *p) for p in ((0, 0), (width, 0), (0, height), (width, height))]
    xs, ys = zip(*corners, strict=True)
    return min(xs), min(ys), max(xs), max(ys)

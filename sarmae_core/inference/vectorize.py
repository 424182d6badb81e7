"""Class rasters to polygons and detections to boxes, written to GeoPackages with GDAL/OGR.

Polygons are traced by ``GDALPolygonize`` from a class raster on disk into a scratch
GeoPackage (so neither the mask nor the raw polygons of a whole scene sit in memory), then
read back one by one: small holes filled, simplified, measured in m2 on the ground
(:class:`~sarmae_core.inference.geodesy.EqualArea`, right in EPSG:4326 too) and filtered by
area. Needs GDAL's Python bindings (``osgeo``), which QGIS ships.

Memory here is not bounded like the raster sweep: GDAL keeps each polygon whole until it is
complete, so the peak grows with the largest polygon (a sea with thousands of speckle holes can
hold millions of vertices). Hole filling and the minimum area act after tracing and do not
lower that peak; splitting polygons at block edges would bound it, at the price of water
bodies cut into pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from ..errors import CancelledError, RasterError
from .detection import Detections
from .geodesy import EqualArea, apply

#: Features per transaction: SQLite is fast in big transactions, slow feature by feature.
_BATCH = 2000
#: Debian/QGIS GDAL block cache while polygonising, MB (its default is 5 % of RAM).
_POLYGONIZE_CACHE_MB = 64


def _ogr():
    try:
        from osgeo import gdal, ogr, osr
    except ImportError as exc:  # pragma: no cover - QGIS and Debian always have it
        raise RasterError(
            "vector outputs need GDAL's Python bindings (osgeo), which QGIS ships; "
            "install python3-gdal or the GDAL wheel matching your GDAL"
        ) from exc
    gdal.UseExceptions()
    ogr.UseExceptions()
    return gdal, ogr, osr


def _srs(crs: CRS | None):
    _, _, osr = _ogr()
    if crs is None:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # x = easting / longitude
    return srs


class GpkgWriter:
    """One polygon layer in a new GeoPackage, written in batched transactions.

    Args:
        path: file to create (a temporary path from the run's output set).
        layer: layer name.
        crs: CRS of the geometries (None: pixel space, no SRS).
        fields: ``(name, kind)`` with kind ``int``, ``real`` or ``str``.
    """

    def __init__(
        self, path: Path, layer: str, crs: CRS | None, fields: Sequence[tuple[str, str]]
    ) -> None:
        _, ogr, _ = _ogr()
        self._ogr = ogr
        driver = ogr.GetDriverByName("GPKG")
        self._ds = driver.CreateDataSource(str(path))
        self._layer = self._ds.CreateLayer(layer, srs=_srs(crs), geom_type=ogr.wkbMultiPolygon)
        kinds = {"int": ogr.OFTInteger64, "real": ogr.OFTReal, "str": ogr.OFTString}
        for name, kind in fields:
            self._layer.CreateField(ogr.FieldDefn(name, kinds[kind]))
        self._defn = self._layer.GetLayerDefn()
        self._pending = 0
        self.count = 0
        self._layer.StartTransaction()

    def add(self, geometry, **values: object) -> None:
        feature = self._ogr.Feature(self._defn)
        feature.SetGeometry(self._ogr.ForceToMultiPolygon(geometry))
        for key, value in values.items():
            if value is not None:
                feature.SetField(key, value)
        self._layer.CreateFeature(feature)
        self.count += 1
        self._pending += 1
        if self._pending >= _BATCH:
            self._layer.CommitTransaction()
            self._layer.StartTransaction()
            self._pending = 0

    def close(self) -> None:
        if self._ds is not None:
            self._layer.CommitTransaction()
            self._ds = None  # OGR closes the file when the last reference goes


@dataclass
class PolygonOptions:
    """How polygons are cleaned.

    Attributes:
        min_area_m2: drop polygons smaller than this (after filling and simplifying).
        fill_holes_m2: fill holes smaller than this (``inf`` fills every hole).
        simplify_m: Douglas-Peucker tolerance (topology preserving), metres on the ground.
    """

    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0


def polygonize(
    raster: Path,
    scratch: Path,
    out: GpkgWriter,
    class_names: Sequence[str],
    crs: CRS | None,
    transform: Affine,
    pixel_size_m: tuple[float, float] | None,
    area: EqualArea | None,
    options: PolygonOptions,
    check_cancel: Callable[[], None],
) -> float:
    """Polygons of the non-zero pixels of ``raster`` (class index, 0 = background or nodata).

    Args:
        raster: uint8 class raster with nodata 0, georeferenced by ``crs`` and ``transform``.
        scratch: path for the raw polygons (deleted by the caller).
        out: the layer receiving cleaned polygons.
        class_names: names by class index.
        pixel_size_m: ground pixel size, to turn metre options into CRS units.
        area: measures areas in m2 (None without a CRS: no areas, no area filters).
        options: cleaning options.
        check_cancel: raises :class:`~sarmae_core.errors.CancelledError` to stop.

    Returns:
        Total area of the written polygons in m2 (NaN without a CRS).
    """
    gdal, ogr, _ = _ogr()
    old_cache = gdal.GetCacheMax()
    gdal.SetCacheMax(_POLYGONIZE_CACHE_MB << 20)
    try:
        src = gdal.Open(str(raster))
        band = src.GetRasterBand(1)
        tmp = ogr.GetDriverByName("GPKG").CreateDataSource(str(scratch))
        layer = tmp.CreateLayer("raw", srs=_srs(crs), geom_type=ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))

        stopped: list[CancelledError] = []

        def callback(_done: float, _msg: str, _data: object) -> int:
            # An exception cannot cross GDAL's C code: stop it (return 0), re-raise after.
            try:
                check_cancel()
            except CancelledError as exc:
                stopped.append(exc)
                return 0
            return 1

        layer.StartTransaction()
        try:
            gdal.Polygonize(band, band.GetMaskBand(), layer, 0, [], callback=callback)
        except RuntimeError:
            if not stopped:
                raise
        if stopped:
            raise stopped[0]
        layer.CommitTransaction()
        src = band = None
    finally:
        gdal.SetCacheMax(old_cache)

    # Geometry work in CRS units; the options are in metres on the ground.
    crs_px = math.hypot(transform.a, transform.d)
    # Without a CRS the grid is in pixels: a tolerance in metres means nothing there.
    metres_per_unit = pixel_size_m[0] / crs_px if pixel_size_m else math.inf
    tolerance = options.simplify_m / metres_per_unit
    total = 0.0
    batch: list[tuple[object, int]] = []

    def flush() -> None:
        nonlocal total
        total += _write_batch(batch, out, class_names, area, options, tolerance)
        batch.clear()

    layer.ResetReading()
    for feature in layer:
        batch.append((feature.GetGeometryRef().Clone(), feature.GetField(0)))
        if len(batch) >= _BATCH:
            check_cancel()
            flush()
    flush()
    tmp = layer = None
    return total if area is not None else float("nan")


def _rings(polygon) -> list[np.ndarray]:
    return [
        np.array(polygon.GetGeometryRef(i).GetPoints(), dtype=float)[:, :2]
        for i in range(polygon.GetGeometryCount())
    ]


def _write_batch(
    batch: list[tuple[object, int]],
    out: GpkgWriter,
    class_names: Sequence[str],
    area: EqualArea | None,
    options: PolygonOptions,
    tolerance: float,
) -> float:
    """Fill holes, simplify, measure (one projection call per batch) and write; returns m2."""
    _, ogr, _ = _ogr()

    def measure(polys: list) -> list[np.ndarray]:
        rings = [_rings(p) for p in polys]
        flat = [r for rs in rings for r in rs]
        if area is not None:
            areas = area.ring_areas(flat)
        else:  # pixel space: no area on the ground, no area filters
            areas = np.full(len(flat), np.nan)
        out_, i = [], 0
        for rs in rings:
            out_.append(areas[i : i + len(rs)])
            i += len(rs)
        return out_

    polys = [g for g, _ in batch]
    if options.fill_holes_m2 > 0:
        filled = []
        for poly, ring_areas in zip(polys, measure(polys), strict=True):
            if len(ring_areas) > 1 and (ring_areas[1:] < options.fill_holes_m2).any():
                new = ogr.Geometry(ogr.wkbPolygon)
                for i, a in enumerate(ring_areas):
                    if i == 0 or a >= options.fill_holes_m2:
                        new.AddGeometry(poly.GetGeometryRef(i))
                poly = new
            filled.append(poly)
        polys = filled
    if tolerance > 0:
        polys = [_largest_polygon(p.SimplifyPreserveTopology(tolerance)) for p in polys]
    total = 0.0
    for poly, ring_areas, (_, cls) in zip(polys, measure(polys), batch, strict=True):
        a = float(ring_areas[0] - ring_areas[1:].sum()) if len(ring_areas) else 0.0
        if poly.IsEmpty() or (np.isfinite(a) and (a <= 0 or a < options.min_area_m2)):
            continue
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        out.add(poly, **{"class": int(cls), "class_name": name, "area_m2": _num(a)})
        total += a
    return total


def _largest_polygon(geom):
    """Simplification may split or empty a polygon; keep one polygon (its largest part)."""
    _, ogr, _ = _ogr()
    if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbPolygon:
        return geom
    parts = [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())]
    parts = [p for p in parts if ogr.GT_Flatten(p.GetGeometryType()) == ogr.wkbPolygon]
    return max(parts, key=lambda p: p.GetArea()).Clone() if parts else ogr.Geometry(ogr.wkbPolygon)


def write_detections(
    path: Path,
    dets: Detections,
    class_names: Sequence[str],
    crs: CRS | None,
    transform: Affine,
    pixel_size_m: tuple[float, float] | None,
    area: EqualArea | None,
) -> int:
    """One box polygon per detection with score, class, length/width in m and centre.

    Args:
        path: GeoPackage to create.
        dets: boxes in pixels of the grid that ``transform`` georeferences.
        class_names: names by class index.
        crs: CRS of ``transform`` (None: pixel space).
        pixel_size_m: ground pixel size, for sizes without a CRS-based measure.
        area: measures ground lengths (None without a CRS).

    Returns:
        Number of features written.
    """
    _, ogr, _ = _ogr()
    fields = [
        ("score", "real"), ("class", "int"), ("class_name", "str"), ("length_m", "real"),
        ("width_m", "real"), ("centre_x", "real"), ("centre_y", "real"), ("lon", "real"),
        ("lat", "real"),
    ]  # fmt: skip
    out = GpkgWriter(path, "detections", crs, fields)
    b = dets.boxes
    x0, y0 = apply(transform, b[:, 0], b[:, 1])
    x1, y1 = apply(transform, b[:, 2], b[:, 3])
    cx, cy = apply(transform, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    x0, y0, x1, y1, cx, cy = (np.asarray(v, dtype=float) for v in (x0, y0, x1, y1, cx, cy))
    nan = np.full(len(dets), np.nan)
    lon, lat = nan, nan
    if area is not None and crs is not None and len(dets):
        side_x, side_y = area.box_sides_m(x0, y0, x1, y1)
        lon, lat = (np.asarray(v) for v in warp_transform(crs, "EPSG:4326", cx, cy))
    elif pixel_size_m is not None:
        side_x = (b[:, 2] - b[:, 0]) * pixel_size_m[0]
        side_y = (b[:, 3] - b[:, 1]) * pixel_size_m[1]
    else:  # pixel space: sizes on the ground are unknown
        side_x, side_y = nan, nan
    for i in range(len(dets)):
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
            ring.AddPoint_2D(float(x[i]), float(y[i]))
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(ring)
        c = int(dets.classes[i])
        out.add(
            poly,
            score=float(dets.scores[i]),
            **{"class": c},
            class_name=class_names[c] if c < len(class_names) else str(c),
            length_m=_num(max(side_x[i], side_y[i])),
            width_m=_num(min(side_x[i], side_y[i])),
            centre_x=float(cx[i]),
            centre_y=float(cy[i]),
            lon=_num(lon[i]),
            lat=_num(lat[i]),
        )
    out.close()
    return out.count


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)

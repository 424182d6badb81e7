"""Class rasters to polygons and detections to boxes, written to GeoPackages.

The IO backend traces polygons from a class raster on disk (``GDALPolygonize``, through GDAL's
bindings or rasterio) and hands them over one by one as numpy rings; here they are cleaned in
batches: small holes filled, simplified (by the backend), measured in m2 on the ground
(:class:`~sarmae_core.inference.geo.geodesy.GridAreas`: each row's pixel area integrated over the
shape, right in EPSG:4326 too, and equal to the class areas of the run), filtered by area
and written by the backend's GeoPackage writer.

Memory here is not bounded like the raster sweep: GDAL keeps each polygon whole until it is
complete, so the peak grows with the largest polygon (a sea with thousands of speckle holes can
hold millions of vertices). Hole filling and the minimum area act after tracing and do not
lower that peak; splitting polygons at block edges would bound it, at the price of water
bodies cut into pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geo.geodesy import EqualArea, GridAreas
from ..geo.geometry import Polygon
from ..geo.georef import Crs, Transform
from ..io.raster_io import FeatureWriter, RasterIO
from ..model.detection import Detections
from .sieve import sieve_mask, sieve_pixels

#: Polygons cleaned and measured together (one projection call per batch).
_BATCH = 2000


@dataclass
class PolygonOptions:
    """How polygons are cleaned.

    Attributes:
        min_area_m2: drop polygons smaller than this (after filling and simplifying).
        fill_holes_m2: fill holes smaller than this (``inf`` fills every hole).
        simplify_m: simplification tolerance (topology preserving with GDAL's bindings),
            metres on the ground.
    """

    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0


def polygonize(
    fileio: RasterIO,
    raster: Path,
    scratch: Path,
    out: FeatureWriter,
    class_names: Sequence[str],
    transform: Transform,
    pixel_size_m: tuple[float, float] | None,
    area: EqualArea | None,
    options: PolygonOptions,
    check_cancel: Callable[[], None],
    sieved: Path | None = None,
) -> float:
    """Polygons of the non-zero pixels of ``raster`` (class index, 0 = background or nodata).

    With ``sieved`` (a scratch path) and an area filter set, the raster is sieved there first
    (:mod:`.sieve`): specks below the areas never reach the tracing.

    Args:
        fileio: the IO backend that traces the polygons.
        raster: uint8 class raster with nodata 0, georeferenced by ``transform``.
        scratch: path the backend may use for the raw polygons (deleted by the caller).
        out: the layer receiving cleaned polygons.
        class_names: names by class index.
        transform: the raster's transform.
        pixel_size_m: ground pixel size, to turn metre options into CRS units.
        area: measures areas in m2 (None without a CRS: no areas, no area filters).
        options: cleaning options.
        check_cancel: raises :class:`~sarmae_core.errors.CancelledError` to stop.
        sieved: where a sieved copy of ``raster`` may be written (deleted by the caller).

    Returns:
        Total area of the written polygons in m2 (NaN without a CRS).
    """
    # Geometry work in CRS units; the options are in metres on the ground.
    crs_px = math.hypot(transform.a, transform.d)
    # Without a CRS the grid is in pixels: a tolerance in metres means nothing there.
    metres_per_unit = pixel_size_m[0] / crs_px if pixel_size_m else math.inf
    tolerance = options.simplify_m / metres_per_unit
    total = 0.0
    batch: list[tuple[Polygon, int]] = []

    def flush() -> None:
        nonlocal total
        total += _write_batch(fileio, batch, out, class_names, measure, options, tolerance)
        batch.clear()

    if sieved is not None and area is not None:
        raster = _sieve(fileio, raster, sieved, transform, area, options, check_cancel)
    measure = None
    if area is not None:  # polygons of this grid's pixels: measured along its rows
        src = fileio.open_raster(str(raster))
        measure = GridAreas(area, transform, src.width, src.height)
        src.close()
    with closing(fileio.polygonize(raster, scratch, check_cancel)) as traced:
        for polygon, value in traced:
            batch.append((polygon, value))
            if len(batch) >= _BATCH:
                check_cancel()
                flush()
    flush()
    return total if area is not None else float("nan")


def _sieve(
    fileio: RasterIO,
    raster: Path,
    sieved: Path,
    transform: Transform,
    area: EqualArea,
    options: PolygonOptions,
    check_cancel: Callable[[], None],
) -> Path:
    """``raster``, or its sieved copy when an area filter is set."""
    if not (options.min_area_m2 > 0 or options.fill_holes_m2 > 0):
        return raster
    src = fileio.open_raster(str(raster))
    width, height = src.width, src.height
    src.close()
    largest = float(np.max(area.row_pixel_areas(transform, width, height)))
    remove = sieve_pixels(options.min_area_m2, largest)
    fill = sieve_pixels(options.fill_holes_m2, largest)
    if remove <= 1 and fill <= 1:  # areas below one pixel: nothing to sieve
        return raster
    sieve_mask(fileio, raster, sieved, remove, fill, check_cancel)
    return sieved


def _write_batch(
    fileio: RasterIO,
    batch: list[tuple[Polygon, int]],
    out: FeatureWriter,
    class_names: Sequence[str],
    area: GridAreas | None,
    options: PolygonOptions,
    tolerance: float,
) -> float:
    """Fill holes, simplify, measure (vectorised over the batch) and write; returns m2."""

    def measure(polys: list[Polygon]) -> list[np.ndarray]:
        flat = [r for p in polys for r in p]
        if area is not None:
            areas = area.ring_areas(flat)
        else:  # pixel space: no area on the ground, no area filters
            areas = np.full(len(flat), np.nan)
        out_, i = [], 0
        for p in polys:
            out_.append(areas[i : i + len(p)])
            i += len(p)
        return out_

    polys = [p for p, _ in batch]
    if options.fill_holes_m2 > 0:
        polys = [
            [p[0], *(r for r, a in zip(p[1:], ring_areas[1:], strict=True)
                     if a >= options.fill_holes_m2)]
            for p, ring_areas in zip(polys, measure(polys), strict=True)
        ]  # fmt: skip
    if tolerance > 0:
        polys = [fileio.simplify(p, tolerance) for p in polys]
    total = 0.0
    for poly, ring_areas, (_, cls) in zip(polys, measure(polys), batch, strict=True):
        a = float(ring_areas[0] - ring_areas[1:].sum()) if len(ring_areas) else 0.0
        if not poly or (np.isfinite(a) and (a <= 0 or a < options.min_area_m2)):
            continue
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        out.add(poly, **{"class": int(cls), "class_name": name, "area_m2": _num(a)})
        total += a
    return total


def write_detections(
    fileio: RasterIO,
    path: Path,
    dets: Detections,
    class_names: Sequence[str],
    crs: Crs | None,
    transform: Transform,
    pixel_size_m: tuple[float, float] | None,
    area: EqualArea | None,
) -> int:
    """One box polygon per detection with score, class, length/width in m and centre.

    Args:
        fileio: the IO backend that writes the GeoPackage.
        path: GeoPackage to create.
        dets: boxes in pixels of the grid that ``transform`` georeferences.
        class_names: names by class index.
        crs: CRS of ``transform`` (None: pixel space).
        pixel_size_m: ground pixel size, for sizes without a CRS-based measure.
        area: measures ground lengths (None without a CRS).

    Returns:
        Number of features written.
    """
    fields = [
        ("score", "real"), ("class", "int"), ("class_name", "str"), ("length_m", "real"),
        ("width_m", "real"), ("centre_x", "real"), ("centre_y", "real"), ("lon", "real"),
        ("lat", "real"),
    ]  # fmt: skip
    out = fileio.feature_writer(path, "detections", crs, fields)
    b = dets.boxes
    x0, y0 = transform.apply(b[:, 0], b[:, 1])
    x1, y1 = transform.apply(b[:, 2], b[:, 3])
    cx, cy = transform.apply((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    x0, y0, x1, y1, cx, cy = (np.asarray(v, dtype=float) for v in (x0, y0, x1, y1, cx, cy))
    nan = np.full(len(dets), np.nan)
    lon, lat = nan, nan
    if area is not None and crs is not None and len(dets):
        side_x, side_y = area.box_sides_m(x0, y0, x1, y1)
        lon, lat = fileio.transform_xy(crs, fileio.parse_crs("EPSG:4326"), cx, cy)
    elif pixel_size_m is not None:
        side_x = (b[:, 2] - b[:, 0]) * pixel_size_m[0]
        side_y = (b[:, 3] - b[:, 1]) * pixel_size_m[1]
    else:  # pixel space: sizes on the ground are unknown
        side_x, side_y = nan, nan
    for i in range(len(dets)):
        ring = np.array([(x0[i], y0[i]), (x1[i], y0[i]), (x1[i], y1[i]), (x0[i], y1[i]),
                         (x0[i], y0[i])])  # fmt: skip
        c = int(dets.classes[i])
        out.add(
            [ring],
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

"""Area of interest: a bounding box in any CRS, GeoJSON-like polygons, or a vector file.

The area becomes a window of the read grid (only that part of the raster is swept) and, for
anything that is not a box in the raster's own CRS, polygons in the raster CRS that mask each
tile (pixels outside become output nodata).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InputError, RasterError
from ..io.raster_io import RasterIO
from ..notes import Notes
from .geometry import Polygon, bounds, box_polygon, geojson_polygons, rasterize
from .georef import Crs, Transform

AreaOfInterest = tuple[float, float, float, float] | dict | str | os.PathLike


@dataclass
class Region:
    """The part of the read grid a run sweeps.

    Attributes:
        row, col, height, width: the window in the read grid.
        transform: affine transform of the window's top-left pixel.
        geometries: polygons (rings in the grid's CRS) that mask it, or empty.
    """

    row: int
    col: int
    height: int
    width: int
    transform: Transform
    geometries: list[Polygon] = field(default_factory=list)

    def mask(self, row: int, col: int, height: int, width: int) -> np.ndarray | None:
        """True inside the area for a window given in region offsets; None when all is inside."""
        if not self.geometries:
            return None
        t = self.transform.then(Transform.translation(col, row))
        return rasterize(self.geometries, t, height, width)


def resolve_aoi(
    aoi: AreaOfInterest | None,
    aoi_crs: str | None,
    crs: Crs | None,
    transform: Transform,
    width: int,
    height: int,
    notes: Notes,
    fileio: RasterIO | None = None,
) -> Region:
    """Window (and mask polygons) of the read grid covered by ``aoi``.

    Args:
        aoi: None (whole raster); ``(xmin, ymin, xmax, ymax)``; a GeoJSON geometry, feature or
            feature collection; or the path of a vector file with polygons.
        aoi_crs: CRS of a box or GeoJSON ``aoi`` (default: the raster's); vector files carry
            their own.
        crs, transform, width, height: the read grid.
        notes: receives assumptions.
        fileio: the IO backend that made ``crs`` (None: :func:`.raster_io.get`'s choice).

    Raises:
        InputError: an area that misses the raster, has no polygons or an unknown CRS.
    """
    if aoi is None:
        return Region(0, 0, height, width, transform)
    if fileio is None:
        from ..io import raster_io

        fileio = raster_io.get()
    src_crs = fileio.parse_crs(str(aoi_crs)) if aoi_crs is not None else crs
    if isinstance(aoi, (str, os.PathLike)):
        geoms, file_crs = read_polygons(Path(aoi), fileio)
        if file_crs is None:
            notes.warn(f"area file {aoi} has no CRS; assumed the raster's")
        src_crs = file_crs or crs
        what = f"area file {Path(aoi).name}"
    elif isinstance(aoi, dict):
        geoms = geojson_polygons(aoi)
        what = "area polygons"
    else:
        try:
            box = tuple(float(v) for v in aoi)
        except (TypeError, ValueError):
            raise InputError(
                f"area of interest {aoi!r} must be (xmin, ymin, xmax, ymax) numbers, GeoJSON "
                "or a vector file"
            ) from None
        if not all(math.isfinite(v) for v in box):
            raise InputError(f"area of interest {aoi} must be finite numbers (no NaN or inf)")
        if len(box) != 4 or box[0] >= box[2] or box[1] >= box[3]:
            raise InputError(f"area of interest {aoi} must be (xmin, ymin, xmax, ymax)")
        what = f"area {box}"
        if src_crs == crs:
            return _region(box, [], crs, transform, width, height, what, src_crs)
        geoms = [box_polygon(box)]
    if not geoms:
        raise InputError(f"the {what} holds no polygons")
    if src_crs is not None and crs is not None and src_crs != crs:
        geoms = [
            [np.column_stack(fileio.transform_xy(src_crs, crs, *r.T)) for r in p] for p in geoms
        ]
    return _region(bounds(geoms), geoms, crs, transform, width, height, what, src_crs)


def read_polygons(path: Path, fileio: RasterIO) -> tuple[list[Polygon], Crs | None]:
    """Polygons of every layer of a vector file, and their CRS, read by the IO backend ``fileio``.

    Raises:
        RasterError: a missing or unreadable file; InputError: a file without polygons.
    """
    if not path.exists():
        raise RasterError(f"area file {path} does not exist")
    try:
        geoms, crs = fileio.read_polygons(path)
    except RasterError as exc:
        raise RasterError(f"area file {exc}") from exc
    if not geoms:
        raise InputError(f"area file {path} holds no polygons")
    return geoms, crs


def _region(
    box: tuple[float, ...],
    geoms: list[Polygon],
    crs: Crs | None,
    transform: Transform,
    width: int,
    height: int,
    what: str,
    box_crs: Crs | None,
) -> Region:
    x0, y0, x1, y1 = box
    cols, rows = transform.inverse().apply(np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
    # Outward to whole pixels; the epsilon keeps float noise (20.0000001) from adding a pixel.
    eps = 1e-6
    col0 = max(0, math.floor(cols.min() + eps))
    row0 = max(0, math.floor(rows.min() + eps))
    col1 = min(width, math.ceil(cols.max() - eps))
    row1 = min(height, math.ceil(rows.max() - eps))
    if col1 - col0 < 1 or row1 - row0 < 1:
        where = f" (CRS {box_crs.to_string()})" if box_crs is not None else ""
        raise InputError(
            f"the {what}{where} does not overlap the raster, whose grid spans "
            f"{tuple(round(v, 6) for v in _grid_bounds(transform, width, height))}"
            f"{f' in {crs.to_string()}' if crs else ' (pixel space)'}"
        )
    origin = transform.then(Transform.translation(col0, row0))
    return Region(row0, col0, row1 - row0, col1 - col0, origin, geoms)


def _grid_bounds(transform: Transform, width: int, height: int) -> tuple[float, ...]:
    corners = [transform.apply(*p) for p in ((0, 0), (width, 0), (0, height), (width, height))]
    xs, ys = zip(*corners, strict=True)
    return min(xs), min(ys), max(xs), max(ys)

"""A sieve on the foreground mask before polygons are traced, strip by strip.

With a minimum polygon area (or a hole-filling area) set, the polygons dropped (or holes
filled) after tracing are mostly specks of a few pixels: on a fragmented map (noisy speckle, an
untrained model) GDAL would first trace millions of them, holding a sea with all its holes in
memory. Sieving the mask first removes them where they are cheap, as pixels:

- ``fill``: background regions smaller than ``fill_px`` pixels take the value of the
  foreground around them (holes in water, as ``fill_holes_m2`` fills them);
- ``remove``: foreground regions smaller than ``remove_px`` pixels (after filling) become
  background (specks of water, as ``min_area_m2`` drops them).

Each is GDAL's sieve (4-connected, as ``GDALPolygonize`` traces) whose changes are kept in one
direction only. The thresholds are counts of pixels no region below the area can exceed (area /
largest pixel area of the grid), so the sieve only removes what the polygon filters would drop
(they still run after tracing, exactly, in m2). A region of fewer than ``n`` pixels lies within
``n`` rows of any pixel of it, so each strip of rows is sieved with ``remove_px + fill_px`` rows
of context above and below (:mod:`.strips`): the same result as sieving the whole raster, in
memory bounded by the strip. Thresholds are capped at :data:`MAX_SIEVE_PX` to keep that context
small; larger areas are left to the polygon filters.
"""

from __future__ import annotations

import math

import numpy as np

from ..io.raster_io import RasterIO

#: Largest sieve threshold in pixels (rows of context above and below each strip).
MAX_SIEVE_PX = 256


def sieve_pixels(area_m2: float, largest_pixel_m2: float) -> int:
    """Regions of fewer pixels than this are smaller than ``area_m2`` anywhere on the grid
    (0: no sieve)."""
    if not area_m2 > 0 or not largest_pixel_m2 > 0:
        return 0
    if math.isinf(area_m2):
        return MAX_SIEVE_PX
    return min(MAX_SIEVE_PX, math.ceil(area_m2 / largest_pixel_m2))


def sieve_window(fileio: RasterIO, classes: np.ndarray, remove_px: int, fill_px: int) -> np.ndarray:
    """Fill background regions below ``fill_px``, then clear foreground below ``remove_px``."""
    out = classes
    if fill_px > 1:
        s = fileio.sieve(out, fill_px)
        out = np.where(out == 0, s, out)  # only background takes a new value
    if remove_px > 1:
        s = fileio.sieve(out, remove_px)
        out = np.where((out != 0) & (s != out), 0, out)  # merged foreground is dropped
    return out.astype(np.uint8, copy=False)

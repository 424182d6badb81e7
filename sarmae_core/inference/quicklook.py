"""A picture of a run a person can open: the SAR scene in grey with the results drawn over it.

Water: semi-transparent blue fill with a cyan outline. Ships: amber boxes. The scene is read
decimated (never whole at full resolution) and shown in dB with a 2-98 % stretch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RasterError
from ..files import atomic_path
from ..units import convert
from . import raster_io

WATER_RGB = np.array([40, 110, 255], dtype=np.float32)
OUTLINE_RGB = np.array([0, 235, 255], dtype=np.uint8)
SHIP_RGB = (255, 176, 0)


def boxes_from_gpkg(
    gpkg: str | os.PathLike, raster: str | os.PathLike, io: str | None = None
) -> np.ndarray:
    """[K, 4] pixel boxes (x0, y0, x1, y1) of the features of a ship GeoPackage over ``raster``.

    The features are in the raster's CRS (predict writes them so), so the inverse geotransform
    maps their envelopes to pixels.
    """
    backend = raster_io.get(io)
    src = backend.open_raster(os.fspath(raster))
    inv = src.transform.inverse()
    src.close()
    polygons, _ = backend.read_polygons(Path(gpkg))
    boxes = []
    for polygon in polygons:
        cols, rows = inv.apply(polygon[0][:, 0], polygon[0][:, 1])
        boxes.append((cols.min(), rows.min(), cols.max(), rows.max()))
    return np.asarray(boxes, dtype=float).reshape(-1, 4)


def _edge(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (
        mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    )
    return mask & ~inner


def write_quicklook(
    raster: str | os.PathLike,
    path: str | os.PathLike,
    units: str,
    class_raster: str | os.PathLike | None = None,
    boxes_px: np.ndarray | None = None,
    band: int = 1,
    max_side: int = 1600,
    overwrite: bool = False,
    side_by_side: bool = False,
    io: str | None = None,
) -> Path:
    """Write a PNG of ``raster`` (band ``band`` in ``units``) with results over it.

    Args:
        raster: the SAR input.
        path: output PNG.
        units: units of the input band (``db``, ``intensity``, ``amplitude``).
        class_raster: class map of a segmentation run (value 1 = water, nodata elsewhere).
        boxes_px: detections as [K, 4] (x0, y0, x1, y1) in input pixel coordinates.
        band: input band to show (1-based).
        max_side: longest side of the picture in pixels.
        overwrite: replace an existing PNG.
        side_by_side: put the plain scene left of the one with results, to compare them.
        io: IO backend name (see :func:`.raster_io.get`).
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    if path.exists() and not overwrite:
        raise RasterError(f"quicklook {path} exists; pass overwrite to replace it")
    backend = raster_io.get(io)
    src = backend.open_raster(os.fspath(raster))
    try:
        # small scenes are enlarged (up to 4x) so that a person can see the outlines
        scale = min(4.0, max_side / max(src.width, src.height))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        sar = src.read_resampled(band, *shape, nearest=False)
    finally:
        src.close()
    # float before filling: integer scenes (uint16 GRD numbers, uint8) have no NaN to fill with
    filled = np.ma.masked_array(sar, dtype=np.float64).filled(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(convert(filled, units, "db"))
    valid = np.isfinite(values) & ~np.ma.getmaskarray(sar)
    lo, hi = np.percentile(values[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    grey = np.clip((values - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    rgb = np.repeat(np.where(valid, grey, 0)[..., None], 3, axis=2).astype(np.float32)
    plain = rgb.copy()
    if class_raster is not None:
        classes = backend.open_raster(os.fspath(class_raster))
        try:
            cls = classes.read_resampled(1, *shape, nearest=True)
        finally:
            classes.close()
        water = (cls.filled(0) == 1) & valid
        rgb[water] = 0.55 * rgb[water] + 0.45 * WATER_RGB  # see the SAR texture through it
        rgb[_edge(water)] = OUTLINE_RGB
    img = Image.fromarray(rgb.astype(np.uint8))
    if boxes_px is not None and len(boxes_px):
        draw = ImageDraw.Draw(img)
        for x0, y0, x1, y1 in np.asarray(boxes_px, dtype=float) * scale:
            draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=SHIP_RGB, width=2)
    if side_by_side:
        gap = np.full((shape[0], 8, 3), 255, np.uint8)
        both = np.concatenate([plain.astype(np.uint8), gap, np.asarray(img)], axis=1)
        img = Image.fromarray(both)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path

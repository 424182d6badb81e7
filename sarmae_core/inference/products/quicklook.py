"""A picture of a run a person can open: the SAR scene in grey with the results drawn over it.

Water: semi-transparent blue fill with a cyan outline. Ships: amber boxes. The scene is read
decimated (never whole at full resolution) and shown in dB with a 2-98 % stretch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import RasterError
from ...files import atomic_path
from ...units import convert
from ..io import raster_io
from ..io.raster_io import RasterIO
from .change import EXCLUDED, FLOOD_CLASSES, REFERENCE

WATER_RGB = np.array([40, 110, 255], dtype=np.float32)
OUTLINE_RGB = np.array([0, 235, 255], dtype=np.uint8)
SHIP_RGB = (255, 176, 0)
#: New flood: red-orange with a dark red outline (the plugin's flood style), apart from water.
FLOOD_RGB = np.array([255, 80, 40], dtype=np.float32)
FLOOD_OUTLINE_RGB = np.array([200, 30, 0], dtype=np.uint8)
#: A flood map's other classes (:data:`.change.FLOOD_CLASSES`): reference water as the class
#: raster's dark navy, excluded pixels as a grey veil.
REFERENCE_RGB = np.array([0, 35, 110], dtype=np.float32)
EXCLUDED_RGB = np.array([150, 150, 150], dtype=np.float32)


def boxes_from_gpkg(
    gpkg: str | os.PathLike, raster: str | os.PathLike, fileio: RasterIO | None = None
) -> np.ndarray:
    """[K, 4] pixel boxes (x0, y0, x1, y1) of the features of a ship GeoPackage over ``raster``.

    The features are in the raster's CRS (predict writes them so), so the inverse geotransform
    maps their envelopes to pixels.
    """
    backend = raster_io.get(fileio)
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


def _db(sar: np.ma.MaskedArray, units: str) -> tuple[np.ndarray, np.ndarray]:
    """dB values of a read band and where they are valid."""
    # float before filling: integer scenes (uint16 GRD numbers, uint8) have no NaN to fill with
    filled = np.ma.masked_array(sar, dtype=np.float64).filled(np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(convert(filled, units, "db"))
    return values, np.isfinite(values) & ~np.ma.getmaskarray(sar)


def _on_grid_of(
    backend: Any, raster: str | os.PathLike, grid: Any, band: int, shape: tuple[int, int]
) -> np.ma.MaskedArray:
    """Band ``band`` of ``raster`` warped onto ``grid``'s grid, read at ``shape``."""
    src = backend.open_raster(os.fspath(raster))
    try:
        nodata = src.nodata
        fill = float("nan") if nodata is None else nodata
        grid_of = (grid.transform, grid.width, grid.height)
        warped = backend.warp(src, grid.crs, grid_of, "bilinear", (nodata, fill))
        try:
            return warped.read_resampled(band, *shape, nearest=False)
        finally:
            warped.close()
    finally:
        src.close()


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
    fileio: RasterIO | None = None,
    before: str | os.PathLike | None = None,
) -> Path:
    """Write a PNG of ``raster`` (band ``band`` in ``units``) with results over it.

    Args:
        raster: the SAR input.
        path: output PNG.
        units: units of the input band (``db``, ``intensity``, ``amplitude``).
        class_raster: class map of a segmentation run (value 1 = water, nodata elsewhere); a
            flood map with the user's layers also shows reference water (2) and excluded (3).
        boxes_px: detections as [K, 4] (x0, y0, x1, y1) in input pixel coordinates.
        band: input band to show (1-based).
        max_side: longest side of the picture in pixels.
        overwrite: replace an existing PNG.
        side_by_side: put the plain scene left of the one with results, to compare them.
        fileio: the IO backend (None: :func:`.raster_io.get`'s choice).
        before: for a flood run, the scene before the event: the picture is then before |
            after | flood over after, both dates on the after scene's grid and grey scale, and
            the class raster's value 1 drawn as new flood (red-orange).
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    if path.exists() and not overwrite:
        raise RasterError(f"quicklook {path} exists; pass overwrite to replace it")
    backend = raster_io.get(fileio)
    src = backend.open_raster(os.fspath(raster))
    try:
        # small scenes are enlarged (up to 4x) so that a person can see the outlines
        scale = min(4.0, max_side / max(src.width, src.height) / (2 if before else 1))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
        sar = src.read_resampled(band, *shape, nearest=False)
        old = _on_grid_of(backend, before, src, band, shape) if before is not None else None
    finally:
        src.close()
    values, valid = _db(sar, units)
    lo, hi = np.percentile(values[valid], [2, 98]) if valid.any() else (0.0, 1.0)

    def grey(v: np.ndarray, ok: np.ndarray) -> np.ndarray:  # one dB scale for both dates
        g = np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1) * 255
        return np.repeat(np.where(ok, g, 0)[..., None], 3, axis=2).astype(np.float32)

    rgb = grey(values, valid)
    plain = rgb.copy()
    flood = before is not None
    if class_raster is not None:
        classes = backend.open_raster(os.fspath(class_raster))
        try:
            cls = classes.read_resampled(1, *shape, nearest=True)
            names = classes.tags(0).get("class_names", "")
        finally:
            classes.close()
        values_cls = cls.filled(0)
        if names == json.dumps(list(FLOOD_CLASSES)):  # a flood map, with or without before
            flood = True
            for value, colour, weight in ((REFERENCE, REFERENCE_RGB, 0.5),
                                          (EXCLUDED, EXCLUDED_RGB, 0.6)):  # fmt: skip
                where = (values_cls == value) & valid
                rgb[where] = (1 - weight) * rgb[where] + weight * colour
        fill, outline = (FLOOD_RGB, FLOOD_OUTLINE_RGB) if flood else (WATER_RGB, OUTLINE_RGB)
        water = (values_cls == 1) & valid
        rgb[water] = 0.55 * rgb[water] + 0.45 * fill  # see the SAR texture through it
        rgb[_edge(water)] = outline
    img = Image.fromarray(rgb.astype(np.uint8))
    if boxes_px is not None and len(boxes_px):
        draw = ImageDraw.Draw(img)
        for x0, y0, x1, y1 in np.asarray(boxes_px, dtype=float) * scale:
            draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=SHIP_RGB, width=2)
    gap = np.full((shape[0], 8, 3), 255, np.uint8)
    if old is not None:
        old_values, old_valid = _db(old, units)
        panels = [grey(old_values, old_valid), plain, np.asarray(img)]
        row = [p for panel in panels for p in (panel.astype(np.uint8), gap)][:-1]
        img = Image.fromarray(np.concatenate(row, axis=1))
    elif side_by_side:
        both = np.concatenate([plain.astype(np.uint8), gap, np.asarray(img)], axis=1)
        img = Image.fromarray(both)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path

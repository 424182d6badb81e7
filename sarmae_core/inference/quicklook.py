"""A picture of a run a person can open: the SAR scene in grey with the results drawn over it.

Water: semi-transparent blue fill with a cyan outline. Ships: amber boxes. The scene is read
decimated (never whole at full resolution) and shown in dB with a 2-98 % stretch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from scipy import ndimage

from ..errors import RasterError
from ..files import atomic_path
from ..units import convert

WATER_RGB = np.array([40, 110, 255], dtype=np.float32)
OUTLINE_RGB = np.array([0, 235, 255], dtype=np.uint8)
SHIP_RGB = (255, 176, 0)


def _read_decimated(path: Path, band: int, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    with rasterio.open(path) as src:
        resampling = Resampling.nearest if nearest else Resampling.average
        data = src.read(band, out_shape=shape, resampling=resampling, masked=True)
    return data


def boxes_from_gpkg(gpkg: str | os.PathLike, raster: str | os.PathLike) -> np.ndarray:
    """[K, 4] pixel boxes (x0, y0, x1, y1) of the features of a ship GeoPackage over ``raster``.

    The features are in the raster's CRS (predict writes them so), so the inverse geotransform
    maps their envelopes to pixels.
    """
    from osgeo import ogr

    with rasterio.open(raster) as src:
        inv = ~src.transform
    ds = ogr.Open(str(gpkg))
    if ds is None:
        raise RasterError(f"cannot open {gpkg} as a vector file")
    boxes = []
    layer = ds.GetLayer(0)
    for feature in layer:
        xmin, xmax, ymin, ymax = feature.GetGeometryRef().GetEnvelope()
        (c0, r0), (c1, r1) = inv * (xmin, ymax), inv * (xmax, ymin)
        boxes.append((min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1)))
    ds = None
    return np.asarray(boxes, dtype=float).reshape(-1, 4)


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
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    if path.exists() and not overwrite:
        raise RasterError(f"quicklook {path} exists; pass overwrite to replace it")
    with rasterio.open(raster) as src:
        # small scenes are enlarged (up to 4x) so that a person can see the outlines
        scale = min(4.0, max_side / max(src.width, src.height))
        shape = (max(1, round(src.height * scale)), max(1, round(src.width * scale)))
    sar = _read_decimated(Path(raster), band, shape, nearest=False)
    values = np.asarray(convert(sar.filled(np.nan).astype(np.float64), units, "db"))
    valid = np.isfinite(values) & ~np.ma.getmaskarray(sar)
    lo, hi = np.percentile(values[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    grey = np.clip((values - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    rgb = np.repeat(np.where(valid, grey, 0)[..., None], 3, axis=2).astype(np.float32)
    plain = rgb.copy()
    if class_raster is not None:
        cls = _read_decimated(Path(class_raster), 1, shape, nearest=True)
        water = (cls.filled(0) == 1) & valid
        rgb[water] = 0.55 * rgb[water] + 0.45 * WATER_RGB  # see the SAR texture through it
        outline = water & ~ndimage.binary_erosion(water)
        rgb[outline] = OUTLINE_RGB
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

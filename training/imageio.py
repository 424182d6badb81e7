"""Reading SAR images and chips from disk: GeoTIFFs through rasterio, 8-bit chips through PIL.

Everything returns float32 arrays ``[C, H, W]`` of stored values; conversion to physical units
is the caller's (:class:`sarmae_train.config.UnitsConfig`), so a chip's declared affine is applied
in one place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F

from sarmae_core import units as U
from sarmae_core.errors import InputError, RasterError

from .config import UnitsConfig

#: Files GDAL reads as rasters (windowed reads, any size).
RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".vrt", ".img", ".jp2"})
#: Files read whole as image chips.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def find_files(inputs: list[str | Path], suffixes: frozenset[str], what: str) -> list[Path]:
    """Files with one of ``suffixes`` from files, folders (searched recursively) and globs.

    Raises:
        InputError: a path that does not exist, or nothing found (naming the suffixes).
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes)
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(Path().glob(str(item))) if any(c in str(item) for c in "*?[") else []
            if not matches and p.is_absolute() and any(c in str(item) for c in "*?["):
                matches = sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))
            if not matches:
                raise InputError(f"no such file or folder: {item}")
            found += [m for m in matches if m.suffix.lower() in suffixes]
    if not found:
        raise InputError(
            f"no {what} ({', '.join(sorted(suffixes))}) in {', '.join(map(str, inputs))}; "
            "check the path or the data.root setting"
        )
    return found


def read_image(path: Path, bands: list[int] | None = None) -> np.ndarray:
    """Stored values of ``path`` as float32 ``[C, H, W]``.

    8-bit greyscale saved as RGB with R = G = B (HRSID, ETCI sources) reads as one channel.

    Args:
        path: PNG/JPEG/BMP (PIL) or a GDAL raster.
        bands: 1-based bands to keep (None: all, or one for grey-as-RGB).

    Raises:
        RasterError: unreadable or truncated file.
        InputError: asked for a band the file does not have.
    """
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            with rasterio.open(path) as src:
                data = src.read().astype(np.float32)
                if src.nodata is not None and not np.isnan(src.nodata):
                    data[data == src.nodata] = np.nan
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()  # a truncated file fails here, not later
                arr = np.asarray(im)
            data = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
            data = data.astype(np.float32)
            if data.shape[0] in (3, 4) and bands is None and _grey(data[:3]):
                data = data[:1]
    except (OSError, ValueError, rasterio.RasterioIOError) as exc:
        raise RasterError(f"cannot read {path}: {exc}") from exc
    if bands is not None:
        if max(bands) > data.shape[0] or min(bands) < 1:
            raise InputError(f"{path} has {data.shape[0]} band(s); asked for bands {bands}")
        data = data[[b - 1 for b in bands]]
    return data


def read_rgb(path: Path) -> np.ndarray:
    """An optical image as float32 RGB ``[3, H, W]`` in [0, 1] (8 or 16 bit; grey repeated)."""
    data = read_image(path)
    if data.shape[0] == 1:
        data = np.repeat(data, 3, axis=0)
    data = data[:3]
    top = 255.0 if np.nanmax(data) <= 255 else 65535.0
    return np.clip(np.nan_to_num(data) / top, 0.0, 1.0).astype(np.float32)


def _grey(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[0], rgb[2]))


def to_model_units(stored: np.ndarray, units: UnitsConfig, model_units: str) -> np.ndarray:
    """Stored values -> physical ``units`` (declared affine) -> the model's units."""
    physical = units.to_physical(stored)
    return np.asarray(U.convert(physical, units.units, model_units), dtype=np.float32)


def resize(x: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize ``[C, H, W]`` (antialiased when shrinking; ``nearest`` for labels)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    if mode == "nearest":
        out = F.interpolate(t, size=size, mode="nearest")
    else:
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].numpy()


def flip_rot(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by ``k`` quarter turns, then mirror left-right if ``flip``."""
    x = np.rot90(x, k, axes=(-2, -1))
    return np.ascontiguousarray(x[..., ::-1] if flip else x)

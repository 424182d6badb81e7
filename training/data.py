"""Pretraining data: random windows from SAR rasters of any size, read with rasterio.

Only the window being read is loaded, so scenes of any size work. Windows touching nodata or
NaN are redrawn; augmentations are the ones valid for SAR geometry (flips, 90-degree turns).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from sarmae_core import units as U
from sarmae_core.errors import InputError, RasterError

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}


def find_rasters(inputs: list[str | Path]) -> list[Path]:
    """Raster files from files, folders (searched recursively) and globs."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(Path().glob(str(item))) if any(c in str(item) for c in "*?[") else []
            if not matches:
                raise InputError(f"no such file or folder: {item}")
            found += [m for m in matches if m.suffix.lower() in RASTER_SUFFIXES]
    if not found:
        raise InputError(f"no raster files ({', '.join(sorted(RASTER_SUFFIXES))}) in {inputs}")
    return found


class RasterWindowDataset(Dataset):
    """Random ``size`` x ``size`` windows from SAR rasters, converted to the model's units.

    Args:
        paths: raster files.
        size: window side in pixels.
        units: units the files are in (``db``, ``intensity``, ``amplitude``).
        model_units: units the model takes.
        bands: 1-based band indexes to read (one per model channel).
        length: windows per epoch.
        seed: base seed; window ``i`` of epoch ``e`` is a pure function of (seed, e, i), so
            runs and resumed runs see the same data.
    """

    def __init__(
        self,
        paths: list[Path],
        size: int,
        units: str,
        model_units: str,
        bands: list[int] | None = None,
        length: int = 1000,
        seed: int = 0,
    ) -> None:
        U.check_units(units)
        self.paths, self.size, self.units, self.model_units = paths, size, units, model_units
        self.bands = bands or [1]
        self.length, self.seed, self.epoch = length, seed, 0
        self.shapes, self.nodata = [], []
        usable = []
        for p in paths:
            try:
                with rasterio.open(p) as src:
                    if src.height < size or src.width < size:
                        log.warning("skipping %s: %dx%d is smaller than one %dpx window",
                                    p, src.width, src.height, size)  # fmt: skip
                        continue
                    if max(self.bands) > src.count:
                        raise InputError(f"{p} has {src.count} band(s); asked for {self.bands}")
                    self.shapes.append((src.height, src.width))
                    self.nodata.append(src.nodata)
                    usable.append(p)
            except rasterio.RasterioIOError as exc:
                log.warning("skipping unreadable %s: %s", p, exc)
        if not usable:
            raise RasterError(
                f"none of the {len(paths)} raster(s) can give a {size}px window; "
                "check the paths or use a smaller --window"
            )
        self.paths = usable

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(20):
            k = int(rng.integers(len(self.paths)))
            h, w = self.shapes[k]
            row, col = int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))
            with rasterio.open(self.paths[k]) as src:
                data = src.read(self.bands, window=Window(col, row, self.size, self.size))
            data = data.astype(np.float32)
            valid = np.isfinite(data)
            if self.nodata[k] is not None:
                valid &= data != self.nodata[k]
            if valid.all():
                break
        else:
            raise InputError(f"found no window without nodata in {self.paths[k]} after 20 tries")
        data = np.asarray(U.convert(data, self.units, self.model_units), dtype=np.float32)
        data = np.rot90(data, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            data = data[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(data))

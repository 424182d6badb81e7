"""OMBRIA Sentinel-1 flood chips: ``{train,test}/{BEFORE,AFTER,MASK}/S1_<kind>_NNNN.png``.

The official split is the folders (624 train, 70 test triplets). Chips are VV dB min-max
stretched per chip to 0-255 (dataset README), so absolute backscatter is lost: the affine in
``data.units`` is a nominal mapping, declared as such. ``data.bands`` picks ``after`` (default),
or ``before`` and ``after`` as two channels (change detection). Masks: 255 = flooded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarmae_core.errors import ConfigError, InputError

from ..imageio import read_image
from .base import Loaded, TaskDataset, read_mask


class Ombria(TaskDataset):
    """OMBRIA S1 chips as binary flood segmentation (0 = other, 1 = flood)."""

    task: ClassVar[str] = "segmentation"
    # The masks are Copernicus EMS flood extents: "water" lets OMBRIA train a water model
    # beside sets that label all open water (ETCI).
    OPTIONS: ClassVar[dict[str, Any]] = {"class_name": "flood"}
    BANDS: ClassVar[list[str]] = ["after"]

    def list_items(self) -> list[str]:
        if any(b not in ("before", "after") for b in self.bands):
            raise ConfigError(f"OMBRIA bands are before and after, got {self.bands}")
        self.class_names = ["background", str(self.options["class_name"])]
        masks = self.root / self.split / "MASK"
        if not masks.is_dir():
            raise InputError(f"{masks} does not exist; OMBRIA splits are train and test")
        return sorted(p.stem.rsplit("_", 1)[1] for p in masks.glob("S1_mask_*.png"))

    def item_id(self, item: str) -> str:
        return f"{self.split}/{item}"

    def _file(self, kind: str, item: str) -> Path:
        return self.root / self.split / kind.upper() / f"S1_{kind}_{item}.png"

    def load(self, item: str) -> Loaded:
        image = np.stack([read_image(self._file(b, item))[0] for b in self.bands])
        label = (read_mask(self._file("mask", item)) > 127).astype(np.uint8)
        return Loaded(image, label)

"""Sen1Floods11 hand-labelled chips: ``S1Hand/<id>_S1Hand.tif``, ``LabelHand/<id>_LabelHand.tif``.

S1 chips are float32 GeoTIFFs, band 1 VV and band 2 VH, in dB (``data.units: {units: db}``);
labels are -1 (no data), 0 (not water), 1 (water). The official split lists
(``flood_{train,valid,test}_data.csv``, rows ``<id>_S1Hand.tif,<id>_LabelHand.tif``) are used
when found anywhere under the dataset folder; otherwise a deterministic split by the CRC32 of
the chip id (``options.test_fraction``). Folders are found anywhere below the dataset folder,
so both the release layout (``v1.1/data/flood_events/HandLabeled/...``) and a flat copy work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarmae_core.errors import ConfigError, InputError

from ..imageio import read_image
from .base import IGNORE, Loaded, TaskDataset, split_of

_BAND = {"vv": 1, "vh": 2}


class Sen1Floods11(TaskDataset):
    """Sen1Floods11 S1Hand/LabelHand as binary water segmentation."""

    task: ClassVar[str] = "segmentation"
    OPTIONS: ClassVar[dict[str, Any]] = {"test_fraction": 0.2}
    BANDS: ClassVar[list[str]] = ["vv", "vh"]

    def _folder(self, name: str) -> Path:
        if (self.root / name).is_dir():
            return self.root / name
        found = sorted(p for p in self.root.rglob(name) if p.is_dir())
        if not found:
            raise InputError(f"no {name}/ folder under {self.root} (Sen1Floods11 layout)")
        return found[0]

    def list_items(self) -> list[str]:
        if any(b not in _BAND for b in self.bands):
            raise ConfigError(f"Sen1Floods11 bands are vv and vh, got {self.bands}")
        self.class_names = ["background", "water"]
        self.s1, self.labels = self._folder("S1Hand"), self._folder("LabelHand")
        ids = sorted(p.name[: -len("_S1Hand.tif")] for p in self.s1.glob("*_S1Hand.tif"))
        split = {"val": "valid"}.get(self.split, self.split)
        lists = sorted(self.root.rglob(f"flood_{split}_data.csv"))
        if lists:
            listed = [
                line.split(",")[0].strip().removesuffix("_S1Hand.tif")
                for line in lists[0].read_text().splitlines()
                if line.strip()
            ]
            known = set(ids)
            return [i for i in listed if i in known]
        if split not in ("train", "test"):
            raise InputError(f"no flood_{split}_data.csv under {self.root}: use train or test")
        frac = float(self.options["test_fraction"])
        return [i for i in ids if split_of(i, frac) == split]

    def load(self, item: str) -> Loaded:
        image = read_image(self.s1 / f"{item}_S1Hand.tif", [_BAND[b] for b in self.bands])
        label = read_image(self.labels / f"{item}_LabelHand.tif")[0]
        valid = np.isfinite(image).all(axis=0)  # image no-data: filled by the base class
        labelled = valid & (np.nan_to_num(label, nan=-1) >= 0)  # -1: no label, image still fine
        target = np.where(labelled, np.nan_to_num(label, nan=0), IGNORE).astype(np.uint8)
        return Loaded(image, target, valid)

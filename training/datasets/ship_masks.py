"""Ship boxes from instance-free masks: ``images/`` and ``masks/`` matched by file stem.

Boxes are the connected components of the mask (8-connectivity, ``skimage.measure.label``);
ships that touch merge into one box, a limit of the format. Components smaller than
``options.min_area`` pixels are dropped. On HRSID mini this gives 69 boxes: the dataset
README's 82 components are 4-connected, which splits off specks that touch a hull diagonally.

HRSID mini has no official split: tiles are split by scene (the ``P0001`` before the first
``_`` of the name), so no scene is in both halves; with the sorted scene ids, every
``options.test_every``-th scene (the 5th, 10th, ...) is test. In the HRSID mini subset
(``data.path: hrsid_mini``, 36 tiles) that holds out scenes P0007 and P0015 (6 tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from skimage.measure import label, regionprops

from sarmae_core.errors import InputError

from ..imageio import IMAGE_SUFFIXES, read_image
from .base import Loaded, TaskDataset, read_mask


def mask_boxes(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """Boxes [M, 5] (x0, y0, x1, y1, 0) of the connected components of ``mask > 0``."""
    regions = regionprops(label(mask > 0, connectivity=2))
    out = [
        [c0, r0, c1, r1, 0] for r in regions if r.area >= min_area for r0, c0, r1, c1 in [r.bbox]
    ]
    return np.asarray(out, np.float32).reshape(-1, 5)


class ShipMasks(TaskDataset):
    """Ship detection from binary (or colour) ship masks."""

    task: ClassVar[str] = "detection"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "images": "images",
        "masks": "masks",
        "test_every": 5,
        "min_area": 4,
    }
    BANDS: ClassVar[list[str]] = ["1"]

    def list_items(self) -> list[tuple[Path, Path]]:
        self.class_names = ["ship"]
        img_dir, mask_dir = self.root / self.options["images"], self.root / self.options["masks"]
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise InputError(f"{self.root} needs {img_dir.name}/ and {mask_dir.name}/ folders")
        masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        pairs = [
            (p, masks[p.stem])
            for p in sorted(img_dir.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks
        ]
        scenes = sorted({p.stem.split("_")[0] for p, _ in pairs})
        every = int(self.options["test_every"])
        test = {s for i, s in enumerate(scenes) if i % every == every - 1}
        if self.split not in ("train", "test"):
            raise InputError(f"ship mask splits are train and test, got {self.split!r}")
        self._boxes: dict[Path, np.ndarray] = {}
        return [pm for pm in pairs if (pm[0].stem.split("_")[0] in test) == (self.split == "test")]

    def item_id(self, item: tuple[Path, Path]) -> str:
        return item[0].name

    def load(self, item: tuple[Path, Path]) -> Loaded:
        image = read_image(item[0], [int(b) for b in self.bands])
        if item[1] not in self._boxes:
            self._boxes[item[1]] = mask_boxes(read_mask(item[1]), int(self.options["min_area"]))
        return Loaded(image, self._boxes[item[1]].copy())

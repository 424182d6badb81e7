"""Generic segmentation sets: images and label masks in two folders, matched by file stem.

Layouts: ``<root>/<split>/{images,masks}/`` or ``<root>/{images,masks}/`` with a
deterministic split by the CRC32 of the name (``options.test_fraction``). Masks are binary by
default (any value above ``options.threshold`` is class 1); with ``binary: false`` mask values
are class indices and ``options.ignore_value`` marks unlabelled pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarmae_core.errors import InputError

from ..imageio import IMAGE_SUFFIXES, read_image
from .base import IGNORE, Loaded, TaskDataset, split_of


class ImageMaskFolders(TaskDataset):
    """Images + masks folders as semantic segmentation."""

    task: ClassVar[str] = "segmentation"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "images": "images",
        "masks": "masks",
        "mask_suffix": "",
        "binary": True,
        "threshold": 0,
        "ignore_value": None,
        "class_names": ["background", "water"],
        "test_fraction": 0.2,
    }
    BANDS: ClassVar[list[str]] = ["1"]

    def list_items(self) -> list[tuple[Path, Path]]:
        self.class_names = list(self.options["class_names"])
        base = self.root / self.split
        split_by_name = not (base / self.options["images"]).is_dir()
        if split_by_name:
            base = self.root
        img_dir, mask_dir = base / self.options["images"], base / self.options["masks"]
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise InputError(f"{base} needs {img_dir.name}/ and {mask_dir.name}/ folders")
        suffix = self.options["mask_suffix"]
        masks = {
            p.stem.removesuffix(suffix) if suffix else p.stem: p
            for p in mask_dir.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        }
        frac = float(self.options["test_fraction"])
        return [
            (p, masks[p.stem])
            for p in sorted(img_dir.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
            and p.stem in masks
            and (not split_by_name or split_of(p.stem, frac) == self.split)
        ]

    def item_id(self, item: tuple[Path, Path]) -> str:
        return item[0].name

    def load(self, item: tuple[Path, Path]) -> Loaded:
        image = read_image(item[0], [int(b) for b in self.bands])
        raw = read_image(item[1])
        raw = np.nan_to_num(raw.max(axis=0), nan=-1)
        if self.options["binary"]:
            target = (raw > float(self.options["threshold"])).astype(np.uint8)
        else:
            target = raw.astype(np.int64)
            if self.options["ignore_value"] is not None:
                target[raw == self.options["ignore_value"]] = IGNORE
            if (target[target != IGNORE] >= len(self.class_names)).any():
                raise InputError(f"{item[1]} has labels >= {len(self.class_names)} classes")
            target = target.astype(np.uint8)
        return Loaded(image, target)

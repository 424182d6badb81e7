"""Classification from folder-per-class image sets; MSTAR with its ``labels.csv`` split.

Layouts read, in this order:

1. ``labels.csv`` with columns ``split, class_idx, class_name, path`` (the MSTAR SOC-10 set,
   ``data.path: mstar_soc10``: train = 17 deg depression, test = 15 deg).
2. ``<root>/<split>/<class>/*.{png,jpg,jpeg,tif}`` (MSTAR as usually distributed).
3. ``<root>/<class>/*`` without split folders: a deterministic split by the CRC32 of each
   file's relative path (``options.test_fraction``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

from sarmae_core.errors import InputError

from ..imageio import IMAGE_SUFFIXES, read_image
from .base import Loaded, TaskDataset, split_of


class ClassFolders(TaskDataset):
    """Folder-per-class images; the class list is sorted folder names (or the CSV's indices)."""

    task: ClassVar[str] = "classification"
    OPTIONS: ClassVar[dict[str, Any]] = {"labels_csv": "labels.csv", "test_fraction": 0.2}
    BANDS: ClassVar[list[str]] = ["1"]

    def list_items(self) -> list[tuple[Path, int]]:
        csv_path = self.root / str(self.options["labels_csv"])
        if csv_path.is_file():
            return self._from_csv(csv_path)
        base = self.root / self.split
        if base.is_dir():
            return self._from_folders(base, lambda p: True)
        top = [d for d in self.root.iterdir() if d.is_dir()]
        if not top:
            raise InputError(f"{self.root} has no class folders (nor {self.split}/ or labels.csv)")
        frac = float(self.options["test_fraction"])
        return self._from_folders(
            self.root, lambda p: split_of(p.relative_to(self.root).as_posix(), frac) == self.split
        )

    def _from_csv(self, path: Path) -> list[tuple[Path, int]]:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        need = {"split", "class_idx", "class_name", "path"}
        if not rows or not need <= set(rows[0]):
            raise InputError(f"{path} needs columns {sorted(need)}")
        names = {int(r["class_idx"]): r["class_name"] for r in rows}
        self.class_names = [names[i] for i in range(len(names))]
        splits = sorted({r["split"] for r in rows})
        if self.split not in splits:
            raise InputError(f"{path} has no split {self.split!r}; it has {splits}")
        return [
            (self.root / r["path"], int(r["class_idx"])) for r in rows if r["split"] == self.split
        ]

    def _from_folders(self, base: Path, keep) -> list[tuple[Path, int]]:
        classes = sorted(d.name for d in base.iterdir() if d.is_dir())
        # Same class list for every split: take it from the training folder when it exists.
        train_dir = self.root / "train"
        if base != self.root and train_dir.is_dir():
            classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
        self.class_names = classes
        items = []
        for idx, name in enumerate(classes):
            folder = base / name
            if not folder.is_dir():
                continue
            items += [
                (p, idx)
                for p in sorted(folder.rglob("*"))
                if p.suffix.lower() in IMAGE_SUFFIXES and keep(p)
            ]
        return items

    def item_id(self, item: tuple[Path, int]) -> str:
        return item[0].relative_to(self.root).as_posix()

    def item_class(self, item: tuple[Path, int]) -> int:
        return item[1]

    def load(self, item: tuple[Path, int]) -> Loaded:
        bands = [int(b) for b in self.bands]
        return Loaded(read_image(item[0], bands), item[1])


class Mstar(ClassFolders):
    """MSTAR target chips (8-bit magnitude JPEGs), SOC split from ``labels.csv`` or folders."""

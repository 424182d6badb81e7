"""Object boxes from COCO JSON (HRSID, SSDD and SARDet-100K releases use it).

``options.annotations`` maps a split to its JSON file (relative to the dataset folder); by
default ``annotations/<split>.json`` or ``annotations/<split>2017.json`` (HRSID's names).
Image ``file_name`` entries are looked up in ``options.images`` (default: the first of
``JPEGImages``, ``images``, ``<split>2017``, ``<split>`` and the dataset folder that holds
them). Crowd annotations are ignored; classes are the categories sorted by id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarmae_core.errors import InputError

from ..imageio import read_image
from .base import Loaded, TaskDataset


class Coco(TaskDataset):
    """COCO detection JSON: boxes (x, y, w, h) -> (x0, y0, x1, y1, class index)."""

    task: ClassVar[str] = "detection"
    OPTIONS: ClassVar[dict[str, Any]] = {"annotations": {}, "images": None}
    BANDS: ClassVar[list[str]] = ["1"]

    def _annotation_file(self) -> Path:
        given = dict(self.options["annotations"] or {})
        if self.split in given:
            path = self.root / given[self.split]
            if not path.is_file():
                raise InputError(f"annotation file {path} does not exist")
            return path
        for name in (f"{self.split}.json", f"{self.split}2017.json"):
            if (self.root / "annotations" / name).is_file():
                return self.root / "annotations" / name
        raise InputError(
            f"no COCO JSON for split {self.split!r} in {self.root / 'annotations'}; "
            "set data.options.annotations.<split> to its path"
        )

    def list_items(self) -> list[tuple[Path, np.ndarray]]:
        path = self._annotation_file()
        try:
            coco = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        cats = sorted(coco.get("categories", []), key=lambda c: c["id"])
        if not cats:
            raise InputError(f"{path} lists no categories")
        index = {c["id"]: i for i, c in enumerate(cats)}
        self.class_names = [str(c.get("name", c["id"])) for c in cats]
        boxes: dict[int, list[list[float]]] = {}
        for a in coco.get("annotations", []):
            if a.get("iscrowd", 0):
                continue
            x, y, w, h = a["bbox"]
            if w > 0 and h > 0:
                boxes.setdefault(a["image_id"], []).append(
                    [x, y, x + w, y + h, index[a["category_id"]]]
                )
        folder = self._image_folder(coco.get("images", []))
        return [
            (
                folder / im["file_name"],
                np.asarray(boxes.get(im["id"], []), np.float32).reshape(-1, 5),
            )
            for im in sorted(coco.get("images", []), key=lambda im: im["file_name"])
        ]

    def _image_folder(self, images: list[dict]) -> Path:
        if self.options["images"]:
            return self.root / self.options["images"]
        first = images[0]["file_name"] if images else ""
        for name in ("JPEGImages", "images", f"{self.split}2017", self.split, "."):
            if (self.root / name / first).is_file():
                return self.root / name
        raise InputError(f"cannot find image {first!r} under {self.root}; set data.options.images")

    def item_id(self, item: tuple[Path, np.ndarray]) -> str:
        return item[0].name

    def load(self, item: tuple[Path, np.ndarray]) -> Loaded:
        return Loaded(read_image(item[0], [int(b) for b in self.bands]), item[1].copy())

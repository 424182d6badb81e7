"""Ship boxes from instance-free masks: ``images/`` and ``masks/`` matched by file stem.

Boxes are the connected components of the mask (8-connectivity, ``skimage.measure.label``);
ships that touch merge into one box, a limit of the format. Components smaller than
``options.min_area`` pixels are dropped. On HRSID mini this gives 69 boxes: the dataset
README's 82 components are 4-connected, which splits off specks that touch a hull diagonally.

Copy-paste (``options.paste_ships: N``, training split only): each training sample gets up to N
more ships, cut by their masks out of the other training tiles (the hull's pixels and a 2 px
rim, in a random one of 8 orientations) and pasted onto open water of the sample: where the
hull's box is as dark as the tile's open water and clear of every ship (with a margin). HRSID
mini is 30 tiles of mostly one to three ships on open sea; pasting gives the crowded
anchorages and the ships beside a coast that the tiles lack (Ghiasi et al., "Simple Copy-Paste
is a Strong Data Augmentation Method for Instance Segmentation", CVPR 2021).

HRSID mini has no official split: tiles are split by scene (the ``P0001`` before the first
``_`` of the name), so no scene is in both halves; with the sorted scene ids, every
``options.test_every``-th scene (the 5th, 10th, ...) is test. In the HRSID mini subset
(``data.path: hrsid_mini``, 36 tiles) that holds out scenes P0007 and P0015 (6 tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import binary_dilation
from skimage.measure import label, regionprops

from sarmae_core.errors import InputError

from ..imageio import IMAGE_SUFFIXES, flip_rot, read_image, to_model_units
from .base import Loaded, TaskDataset, read_mask


def mask_ships(mask: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, list[Any]]:
    """The ships of a mask: its connected components (8-connectivity) of at least
    ``min_area`` px, as (component labels [H, W], their ``regionprops``)."""
    labels = label(mask > 0, connectivity=2)
    return labels, [r for r in regionprops(labels) if r.area >= min_area]


def mask_boxes(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """Boxes [M, 5] (x0, y0, x1, y1, 0) of the ships of ``mask`` (:func:`mask_ships`)."""
    _, ships = mask_ships(mask, min_area)
    out = [[c0, r0, c1, r1, 0] for r in ships for r0, c0, r1, c1 in [r.bbox]]
    return np.asarray(out, np.float32).reshape(-1, 5)


class ShipMasks(TaskDataset):
    """Ship detection from binary (or colour) ship masks."""

    task: ClassVar[str] = "detection"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "images": "images",
        "masks": "masks",
        "test_every": 5,
        "test_fold": None,
        "min_area": 4,
        "paste_ships": 0,
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
        # test_fold picks which scenes of every `every` are test (cross-validation by scene)
        fold = every - 1 if self.options["test_fold"] is None else int(self.options["test_fold"])
        if not 0 <= fold < every:
            raise InputError(f"test_fold must be 0..{every - 1} with test_every {every}")
        test = {s for i, s in enumerate(scenes) if i % every == fold}
        if self.split not in ("train", "test"):
            raise InputError(f"ship mask splits are train and test, got {self.split!r}")
        self._boxes: dict[Path, np.ndarray] = {}
        self._bank: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        return [pm for pm in pairs if (pm[0].stem.split("_")[0] in test) == (self.split == "test")]

    def item_id(self, item: tuple[Path, Path]) -> str:
        return item[0].name

    def load(self, item: tuple[Path, Path]) -> Loaded:
        image = read_image(item[0], [int(b) for b in self.bands])
        if item[1] not in self._boxes:
            self._boxes[item[1]] = mask_boxes(read_mask(item[1]), int(self.options["min_area"]))
        return Loaded(image, self._boxes[item[1]].copy())

    def _augment(self, image: np.ndarray, target: Any, rng: np.random.Generator) -> tuple:
        n = int(self.options["paste_ships"])
        if n > 0:
            image, target = paste_ships(image, target, self._ship_bank(), int(rng.integers(n + 1)),
                                        rng)  # fmt: skip
        return super()._augment(image, target, rng)

    def _ship_bank(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every ship of this split's tiles as (pixels [C, h, w] in the model's units, the
        pixels to paste: its hull and a rim of ``_RIM`` px [h, w], the hull [h, w]), read once."""
        if self._bank is None:
            self._bank = []
            for image_path, mask_path in self.items:
                raw = read_image(image_path, [int(b) for b in self.bands])
                pixels = to_model_units(np.nan_to_num(raw), self.cfg.units, self.model_units)
                hulls, ships = mask_ships(read_mask(mask_path), int(self.options["min_area"]))
                for r in ships:  # the ships the boxes are made of
                    r0, c0, r1, c1 = r.bbox
                    r0, c0 = max(r0 - _RIM, 0), max(c0 - _RIM, 0)
                    r1, c1 = min(r1 + _RIM, hulls.shape[0]), min(c1 + _RIM, hulls.shape[1])
                    hull = hulls[r0:r1, c0:c1] == r.label
                    rim = binary_dilation(hull, iterations=_RIM)
                    self._bank.append((pixels[:, r0:r1, c0:c1].copy(), rim, hull))
        return self._bank


#: Pixels of sea kept around a pasted hull (its sidelobes and the sea it sat on), and the gap
#: kept between a pasted ship and any other (so that no two ships merge into one box).
_RIM, _GAP = 2, 6
#: How much brighter than the darkest water of a tile (dB) a place may be and still be sea.
_SEA_DB = 2.0


def paste_ships(
    image: np.ndarray,
    boxes: np.ndarray,
    bank: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    count: int,
    rng: np.random.Generator,
    tries: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` ships of ``bank`` (pixels, pixels to paste, hull: see
    ``ShipMasks._ship_bank``) pasted onto open water of ``image`` ([C, H, W], the model's
    units: brighter is larger), their hulls' boxes added to ``boxes`` [M, 5].

    A ship goes where its footprint's median is within ``_SEA_DB`` of the tile's darkest water
    (sea, not land or a quay) and at least ``_GAP`` px from every ship; after ``tries`` places that
    fail, it is left out. Each is turned by a random quarter turn and flip.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
    if count <= 0 or not bank:
        return image, boxes
    image = image.copy()
    h, w = image.shape[-2:]
    # Sea level: the darkest tenth of 16 px blocks (by their median) is open water on any
    # tile that has some; a footprint up to _SEA_DB brighter is still sea (speckle), land and
    # quays are several dB brighter. On a tile of open sea, nearly everywhere qualifies.
    bh, bw = h // 16, w // 16
    blocks = np.median(image[0, : bh * 16, : bw * 16].reshape(bh, 16, bw, 16), axis=(1, 3))
    sea_level = float(np.percentile(blocks, 10)) + _SEA_DB
    taken = np.zeros((h, w), bool)
    for x0, y0, x1, y1, _ in boxes:
        taken[max(int(y0) - _GAP, 0) : int(np.ceil(y1)) + _GAP,
              max(int(x0) - _GAP, 0) : int(np.ceil(x1)) + _GAP] = True  # fmt: skip
    added = []
    for _ in range(count):
        pixels, paste, hull = bank[int(rng.integers(len(bank)))]
        k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        pixels, paste, hull = (flip_rot(a, k, flip) for a in (pixels, paste, hull))
        ph, pw = hull.shape
        if ph >= h or pw >= w:
            continue
        rows, cols = np.nonzero(hull)
        hr0, hc0, hr1, hc1 = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        for _ in range(tries):
            r, c = int(rng.integers(h - ph + 1)), int(rng.integers(w - pw + 1))
            if taken[r : r + ph, c : c + pw].any():
                continue
            if float(np.median(image[0, r + hr0 : r + hr1, c + hc0 : c + hc1])) > sea_level:
                continue  # the ship's footprint is brighter than the tile's sea: land or quay
            window = image[:, r : r + ph, c : c + pw]
            window[:, paste] = pixels[:, paste]
            taken[max(r - _GAP, 0) : r + ph + _GAP, max(c - _GAP, 0) : c + pw + _GAP] = True
            added.append([c + hc0, r + hr0, c + hc1, r + hr1, 0])
            break
    if added:
        boxes = np.concatenate([boxes, np.asarray(added, np.float32)])
    return image, boxes

"""What every fine-tuning reader shares: sample selection, units, nodata, crops, augmentation,
skipping of unreadable files, and batching.

A reader lists its samples (:meth:`TaskDataset.list_items`) and loads one
(:meth:`TaskDataset.load`) as stored values plus a target; this base class turns them into
tensors in the model's units. Targets: a class index (classification), a label map
``[H, W]`` with 255 = ignore (segmentation), or boxes ``[M, 5]`` as (x0, y0, x1, y1, class)
in pixel-edge coordinates (detection).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sarmae_core.errors import ConfigError, InputError, SarmaeError

from ..config import FinetuneDataConfig, nearest, resolve_data_path
from ..imageio import flip_rot, to_model_units

log = logging.getLogger(__name__)

IGNORE = 255


@dataclass
class Loaded:
    """One sample as stored.

    Attributes:
        image: [C, H, W] stored values (NaN where the file has no data).
        target: class index, label map [H, W] (IGNORE where unlabelled) or boxes [M, 5].
        valid: [H, W] pixels with image data (None: all finite ones); the others are filled
            and, for segmentation, ignored.
    """

    image: np.ndarray
    target: Any
    valid: np.ndarray | None = None


class TaskDataset(Dataset):
    """Base of the fine-tuning readers.

    Args:
        cfg: the data section of the run.
        split: split name (``train``, ``test`` ...; the reader says which it knows).
        model_units: units the model takes.
        train: random crops and flips/quarter turns (otherwise whole images, unchanged).
        seed: base seed; sample ``i`` of epoch ``e`` is augmented by (seed, e, i).
    """

    task: ClassVar[str] = ""
    #: Reader options and their defaults (``data.options``); unknown keys are refused.
    OPTIONS: ClassVar[dict[str, Any]] = {}
    #: Default channels (``data.bands``).
    BANDS: ClassVar[list[str]] = []

    def __init__(
        self, cfg: FinetuneDataConfig, split: str, model_units: str, train: bool, seed: int = 0
    ) -> None:
        self.cfg, self.split, self.model_units, self.train, self.seed = (
            cfg,
            split,
            model_units,
            train,
            seed,
        )
        self.root = resolve_data_path(cfg.root, cfg.path)
        if not self.root.exists():
            raise InputError(f"dataset folder {self.root} does not exist (data.root/data.path)")
        if self.root.is_dir() and not any(self.root.iterdir()):
            raise InputError(f"dataset folder {self.root} is empty")
        self.options = self._check_options(cfg.options)
        self.bands = list(cfg.bands or self.BANDS)
        self.class_names: list[str] = []
        self.items: list[Any] = self.list_items()
        if not self.items:
            raise InputError(f"{type(self).__name__}: no {split!r} samples in {self.root}")
        self.items = self._select(self.items)
        self.epoch = 0
        self.skipped: dict[str, str] = {}
        self._probe()

    # ------------------------------------------------------------------ reader interface
    def list_items(self) -> list[Any]:
        """The split's samples (anything :meth:`load` and :meth:`item_id` understand)."""
        raise NotImplementedError

    def load(self, item: Any) -> Loaded:
        """Stored values and target of one sample."""
        raise NotImplementedError

    def item_id(self, item: Any) -> str:
        return str(item)

    def item_class(self, item: Any) -> int | None:
        """Class of a classification sample (for few-shot selection)."""
        return None

    # ------------------------------------------------------------------ common
    def _check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        for key in given:
            if key not in self.OPTIONS:
                valid = ", ".join(self.OPTIONS) or "none"
                raise ConfigError(
                    f"data.options.{key} is not an option of the {type(self).__name__} reader"
                    f"{nearest(key, tuple(self.OPTIONS))} (options: {valid})"
                )
        return {**self.OPTIONS, **given}

    def _select(self, items: list[Any]) -> list[Any]:
        """Deterministic subsets: few-shot per class, or at most N samples."""
        cfg = self.cfg
        limit = cfg.max_train if self.train else cfg.max_test
        shots = cfg.shots_per_class if self.train else None
        if limit is None and shots is None:
            return items
        order = np.random.default_rng([self.seed, zlib.crc32(self.split.encode())]).permutation(
            len(items)
        )
        picked = [items[i] for i in order]
        if shots is not None:
            count: dict[int | None, int] = {}
            kept = []
            for it in picked:
                c = self.item_class(it)
                if count.get(c, 0) < shots:
                    kept.append(it)
                    count[c] = count.get(c, 0) + 1
            picked = kept
        return sorted(picked[:limit], key=self.item_id) if limit else picked

    def _probe(self, n: int = 8) -> None:
        picks = np.unique(np.linspace(0, len(self.items) - 1, min(n, len(self.items))).astype(int))
        errors = []
        for i in picks:
            try:
                self.load(self.items[int(i)])
                return
            except (SarmaeError, OSError, ValueError) as exc:
                errors.append(str(exc))
        raise InputError(
            f"none of {len(picks)} probed samples of {self.root} ({self.split}) can be read; "
            f"first error: {errors[0]}"
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self.items[index]
        try:
            s = self.load(item)
        except (SarmaeError, OSError, ValueError) as exc:
            key = self.item_id(item)
            if key not in self.skipped:
                log.warning("skipping unreadable sample %s: %s", key, exc)
            self.skipped[key] = str(exc)
            return None
        image, target, valid = s.image, s.target, s.valid
        finite = np.isfinite(image).all(axis=0)
        valid = finite if valid is None else (valid & finite)
        image = to_model_units(np.nan_to_num(image, nan=0.0), self.cfg.units, self.model_units)
        if not valid.all():
            # Nodata gets the median of the valid pixels: finite, unremarkable input; the
            # segmentation loss ignores those pixels anyway.
            for c in range(image.shape[0]):
                fill = np.median(image[c][valid]) if valid.any() else 0.0
                image[c][~valid] = fill
            if self.task == "segmentation":
                target = np.where(valid, target, IGNORE).astype(target.dtype)
        if self.train:
            image, target = self._augment(
                image, target, np.random.default_rng([self.seed, self.epoch, index])
            )
        out = {"image": torch.from_numpy(np.ascontiguousarray(image)), "id": self.item_id(item)}
        if self.task == "classification":
            out["target"] = int(target)
        elif self.task == "segmentation":
            out["target"] = torch.from_numpy(np.ascontiguousarray(target).astype(np.int64))
        else:
            out["target"] = torch.as_tensor(np.asarray(target, np.float32).reshape(-1, 5))
        return out

    def _augment(self, image: np.ndarray, target: Any, rng: np.random.Generator) -> tuple:
        crop, aug = self.cfg.crop, self.cfg.augment
        if aug.scale is not None and self.task != "classification":
            lo, hi = np.log(aug.scale[0]), np.log(aug.scale[1])
            zoom = float(np.exp(rng.uniform(lo, hi))) if hi > lo else float(aug.scale[0])
            image, target = zoom_sample(image, target, zoom, self.task, crop, rng, aug.object_crop)
        if crop:
            image, target = random_crop(image, target, crop, self.task, rng, aug.object_crop)
        if self.model_units == "db" and (aug.db_offset or aug.db_gain):
            image = jitter_db(image, rng, aug.db_offset, aug.db_gain)
        k = int(rng.integers(4)) if self.cfg.augment.rot90 else 0
        flip = bool(rng.random() < 0.5) if self.cfg.augment.flip else False
        if self.task == "detection":
            target = transform_boxes(
                np.asarray(target, np.float32).reshape(-1, 5),
                k,
                flip,
                image.shape[-2],
                image.shape[-1],
            )
        elif self.task == "segmentation":
            target = flip_rot(target, k, flip)
        return flip_rot(image, k, flip), target


# ---------------------------------------------------------------------------------- geometry
def zoom_sample(
    image: np.ndarray,
    target: Any,
    zoom: float,
    task: str,
    crop: int | None,
    rng: np.random.Generator,
    object_crop: float = 0.0,
) -> tuple[np.ndarray, Any]:
    """``image`` (and its labels or boxes) resampled by ``zoom`` (< 1: coarser pixels).

    Shrinking averages the pixels it merges (antialiased, like multilooking or the
    ``average`` resampling of :mod:`sarmae_core.inference.scene.source`); labels take the nearest
    pixel. With a training crop, a region of ``crop / zoom`` is cut first, so a shrunk sample
    still fills the crop instead of being padded (placed as :func:`random_crop` with
    ``object_crop``).
    """
    if crop and zoom < 1:
        size = int(np.ceil(crop / zoom))
        image, target = random_crop(image, target, size, task, rng, object_crop)
    h, w = image.shape[-2:]
    nh, nw = max(1, round(h * zoom)), max(1, round(w * zoom))
    if (nh, nw) == (h, w):
        return image, target
    t = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
    image = F.interpolate(
        t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=zoom < 1
    )[0].numpy()
    if task == "segmentation":
        rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(int), h - 1)
        cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(int), w - 1)
        target = np.asarray(target)[rows[:, None], cols[None, :]]
    elif task == "detection":
        boxes = np.asarray(target, np.float32).reshape(-1, 5).copy()
        boxes[:, [0, 2]] *= nw / w
        boxes[:, [1, 3]] *= nh / h
        target = boxes
    return image, target


def jitter_db(
    image: np.ndarray, rng: np.random.Generator, offset: float, gain: float
) -> np.ndarray:
    """dB calibration jitter: ``median + g * (x - median) + o`` per channel, with
    ``o`` ~ U(-offset, offset) dB and ``g`` ~ U(1 - gain, 1 + gain), one draw per sample."""
    if not offset and not gain:
        return image
    o = float(rng.uniform(-offset, offset)) if offset else 0.0
    g = float(rng.uniform(1 - gain, 1 + gain)) if gain else 1.0
    med = np.median(image.reshape(image.shape[0], -1), axis=1).reshape(-1, 1, 1)
    return (med + g * (image - med) + o).astype(image.dtype, copy=False)


def random_crop(
    image: np.ndarray,
    target: Any,
    size: int,
    task: str,
    rng: np.random.Generator,
    object_crop: float = 0.0,
) -> tuple[np.ndarray, Any]:
    """A random ``size`` x ``size`` crop (images smaller than that are padded, label IGNORE).

    For detection, with probability ``object_crop`` the crop holds one whole box drawn at
    random (centred on it when it is larger than ``size``); otherwise it is drawn anywhere.
    """
    h, w = image.shape[-2:]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="edge")
        if task == "segmentation":
            target = np.pad(target, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = image.shape[-2:]
    boxes = np.asarray(target, np.float32).reshape(-1, 5) if task == "detection" else None
    if boxes is not None and len(boxes) and object_crop and rng.random() < object_crop:
        x0, y0, x1, y1, _ = boxes[int(rng.integers(len(boxes)))]
        r0, c0 = _origin_holding(y0, y1, h, size, rng), _origin_holding(x0, x1, w, size, rng)
    else:
        r0, c0 = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    image = image[:, r0 : r0 + size, c0 : c0 + size]
    if task == "segmentation":
        target = target[r0 : r0 + size, c0 : c0 + size]
    elif task == "detection":
        target = crop_boxes(np.asarray(target, np.float32).reshape(-1, 5), r0, c0, size, size)
    return image, target


def _origin_holding(lo: float, hi: float, n: int, size: int, rng: np.random.Generator) -> int:
    """A crop start along one axis of length ``n`` whose ``size`` pixels hold [lo, hi], drawn
    uniformly among those that do; centred on the interval when it is longer than ``size``."""
    first, last = max(0, int(np.ceil(hi)) - size), min(int(np.floor(lo)), n - size)
    if first > last:  # the object is longer than the crop: its middle
        return int(np.clip(round((lo + hi) / 2 - size / 2), 0, n - size))
    return int(rng.integers(first, last + 1))


def crop_boxes(boxes: np.ndarray, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Boxes moved into a crop and clipped to it; boxes whose centre leaves the crop drop out."""
    b = boxes.copy()
    b[:, [0, 2]] -= c0
    b[:, [1, 3]] -= r0
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    keep = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    b = b[keep]
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return b


def transform_boxes(boxes: np.ndarray, k: int, flip: bool, h: int, w: int) -> np.ndarray:
    """Boxes under :func:`sarmae_train.imageio.flip_rot` (``k`` quarter turns, then a mirror).

    One ``np.rot90`` turn maps pixel-edge point (x, y) of an h x w image to (y, w - x).
    """
    b = boxes.copy()
    for _ in range(k % 4):
        x0, y0, x1, y1 = b[:, 0].copy(), b[:, 1].copy(), b[:, 2].copy(), b[:, 3].copy()
        b[:, 0], b[:, 2] = y0, y1
        b[:, 1], b[:, 3] = w - x1, w - x0
        h, w = w, h
    if flip:
        x0, x1 = b[:, 0].copy(), b[:, 2].copy()
        b[:, 0], b[:, 2] = w - x1, w - x0
    return b


def split_of(name: str, test_fraction: float) -> str:
    """Deterministic train/test assignment of a name (CRC32), for sets without an official split."""
    return "test" if zlib.crc32(name.encode()) % 1000 < test_fraction * 1000 else "train"


# ---------------------------------------------------------------------------------- batching
class TaskCollate:
    """Batches of task samples; images of different sizes are padded bottom/right.

    Images are padded to the largest size in the batch rounded up to ``multiple`` (the patch)
    with ``fill`` (the model's normalisation mean: zero after normalising); label maps with
    IGNORE. Unreadable (None) samples are dropped.
    """

    def __init__(self, task: str, multiple: int, fill: Sequence[float]) -> None:
        self.task, self.multiple = task, multiple
        self.fill = torch.tensor(list(fill), dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        ok = [s for s in samples if s is not None]
        if not ok:
            return None
        m = self.multiple
        hs = [s["image"].shape[-2] for s in ok]
        ws = [s["image"].shape[-1] for s in ok]
        H, W = -(-max(hs) // m) * m, -(-max(ws) // m) * m
        images = self.fill.expand(len(ok), -1, H, W).clone()
        for i, s in enumerate(ok):
            images[i, :, : hs[i], : ws[i]] = s["image"]
        out: dict[str, Any] = {
            "image": images,
            "id": [s["id"] for s in ok],
            "size": list(zip(hs, ws, strict=True)),
        }
        if self.task == "classification":
            out["target"] = torch.tensor([s["target"] for s in ok], dtype=torch.long)
        elif self.task == "segmentation":
            t = torch.full((len(ok), H, W), IGNORE, dtype=torch.long)
            for i, s in enumerate(ok):
                t[i, : hs[i], : ws[i]] = s["target"]
            out["target"] = t
        else:
            out["target"] = [s["target"] for s in ok]
        return out


def read_mask(path: Path) -> np.ndarray:
    """A label image as ``[H, W]`` uint8 (colour masks: the largest channel)."""
    from ..imageio import read_image

    m = read_image(path)
    return np.nan_to_num(m.max(axis=0)).astype(np.uint8)


class ConcatTaskDataset(Dataset):
    """Several readers' training splits as one dataset (same task and classes required)."""

    def __init__(self, parts: list[TaskDataset]) -> None:
        names = {tuple(p.class_names) for p in parts}
        if len(names) != 1:
            raise InputError(f"training sets name different classes: {sorted(names)}")
        self.parts = parts
        self.task = parts[0].task
        self.class_names = list(parts[0].class_names)
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])

    @property
    def skipped(self) -> dict[str, str]:
        return {k: v for p in self.parts for k, v in p.skipped.items()}

    def set_epoch(self, epoch: int) -> None:
        for p in self.parts:
            p.set_epoch(epoch)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Any:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part][index - int(self.offsets[part])]

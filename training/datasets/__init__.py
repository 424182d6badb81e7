"""Fine-tuning dataset readers, one module per format, chosen by ``data.format``.

| format | task | layout |
|---|---|---|
| ``mstar`` | classification | MSTAR chips: ``labels.csv`` or ``<split>/<class>/`` |
| ``class_folders`` | classification | any folder-per-class image set |
| ``etci`` | segmentation | ETCI 2021 tiles (``vv``, ``vh``, ``flood_label``, ...) |
| ``ombria`` | segmentation | OMBRIA S1 (``BEFORE``, ``AFTER``, ``MASK``) |
| ``sen1floods11`` | segmentation | Sen1Floods11 ``S1Hand`` / ``LabelHand`` GeoTIFFs |
| ``image_mask_folders`` | segmentation | generic ``images/`` + ``masks/`` |
| ``coco`` | detection | COCO JSON boxes (HRSID, SSDD, SARDet-100K) |
| ``ship_masks`` | detection | ship masks, boxes by connected components (HRSID mini) |
"""

from __future__ import annotations

from sarmae_core.errors import ConfigError

from ..config import FinetuneDataConfig, nearest
from .base import IGNORE, TaskCollate, TaskDataset
from .class_folders import ClassFolders, Mstar
from .coco import Coco
from .etci import Etci
from .image_mask_folders import ImageMaskFolders
from .ombria import Ombria
from .sen1floods11 import Sen1Floods11
from .ship_masks import ShipMasks

FORMATS: dict[str, type[TaskDataset]] = {
    "mstar": Mstar,
    "class_folders": ClassFolders,
    "etci": Etci,
    "ombria": Ombria,
    "sen1floods11": Sen1Floods11,
    "image_mask_folders": ImageMaskFolders,
    "coco": Coco,
    "ship_masks": ShipMasks,
}


def build_dataset(
    cfg: FinetuneDataConfig,
    split: str,
    model_units: str,
    train: bool,
    seed: int = 0,
    task: str | None = None,
) -> TaskDataset:
    """The reader of ``cfg.format`` for ``split``.

    Raises:
        ConfigError: unknown format (naming the nearest), or a format of another task.
    """
    if cfg.format not in FORMATS:
        raise ConfigError(
            f"unknown data.format {cfg.format!r}{nearest(cfg.format, tuple(FORMATS))} "
            f"(formats: {', '.join(FORMATS)})"
        )
    cls = FORMATS[cfg.format]
    if task is not None and cls.task != task:
        raise ConfigError(f"data.format {cfg.format!r} is a {cls.task} set, not {task}")
    return cls(cfg, split, model_units, train, seed)


__all__ = ["FORMATS", "IGNORE", "TaskCollate", "TaskDataset", "build_dataset"]

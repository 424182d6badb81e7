"""Run configuration sections: YAML file -> these dataclasses, with ``key=value`` overrides.

Every section is a dataclass, so a misspelt key fails at start-up with the dotted path and the
nearest valid key (``optim.lrr`` -> "did you mean 'lr'?") instead of being silently ignored
(:mod:`sarmae_train.config_loader`). Model keys are checked by
:func:`sarmae_core.models.make_config`, dataset options by the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarmae_core.config import UNITS
from sarmae_core.errors import ConfigError
from sarmae_core.inference.options import BOXES

# The loading machinery lives in config_loader (generic); re-exported here for one import path.
from .config_loader import (  # noqa: F401
    CONFIG_DIR,
    REPO_ROOT,
    apply_overrides,
    build,
    load_config,
    nearest,
    parse_override,
    read_yaml,
    resolve_data_path,
    to_plain,
)


# ------------------------------------------------------------------------------ sections
@dataclass
class UnitsConfig:
    """How stored pixel values (DN) map to physical units: ``max(DN * scale + offset, floor)``.

    Calibrated rasters need only ``units``. 8-bit chips are not calibrated: declare the affine
    you assume (e.g. ``units: db, scale: 35/255, offset: -30``) and say why in a comment.
    Bands stretched differently (ETCI's VV and VH) take one value per band:
    ``scale: [35/255, 16/255]``.

    Attributes:
        units: physical units after the affine: ``db``, ``intensity`` or ``amplitude``.
        scale, offset: affine from stored values to ``units``: one number for all bands, or a
            list with one per band (in ``data.bands`` order).
        floor: lowest physical value (zero amplitude or intensity has no dB: half an 8-bit
            step keeps shadows finite), or None.
    """

    units: str = "db"
    scale: float | list[float] = 1.0
    offset: float | list[float] = 0.0
    floor: float | None = None

    def __post_init__(self) -> None:
        if self.units not in UNITS:
            raise ConfigError(
                f"units {self.units!r} is not one of {', '.join(UNITS)}; for 8-bit chips declare "
                "the physical units and an affine (scale, offset) from DN to them"
            )
        if not np.all(np.asarray(self.scale, dtype=float)):
            raise ConfigError("units.scale must not be 0")

    def _per_band(self, value: float | list[float], dn: np.ndarray, name: str) -> np.ndarray:
        """``value`` shaped to broadcast over the bands of ``dn`` (``[C, H, W]``, or one band
        ``[H, W]``) without changing its shape."""
        v = np.asarray(value, dtype=np.float32)
        if v.ndim == 0:
            return v
        bands = dn.shape[0] if dn.ndim == 3 else 1
        if v.shape != (bands,):
            raise ConfigError(
                f"units.{name} lists {v.size} values for {bands} band(s); give one per band "
                "(in data.bands order) or a single number for all"
            )
        return v.reshape(bands, 1, 1) if dn.ndim == 3 else v.reshape(())

    def to_physical(self, dn: np.ndarray) -> np.ndarray:
        """Physical values of ``dn`` (``[C, H, W]`` when scale/offset are per band)."""
        scale = self._per_band(self.scale, dn, "scale")
        offset = self._per_band(self.offset, dn, "offset")
        x = dn.astype(np.float32) * scale + offset
        if self.floor is not None:
            x = np.maximum(x, np.float32(self.floor))
        return x


@dataclass
class AugmentConfig:
    """Augmentations valid for SAR.

    Attributes:
        flip, rot90: mirror and quarter turns (geometry only).
        scale: ``[min, max]`` zoom factor drawn log-uniformly per sample (0.5 = pixels twice as
            coarse, by area averaging as multilooking would; labels by nearest neighbour), so
            that one model serves the 10-20 m pixels of Sentinel-1 GRD, ETCI and OMBRIA. Fine-tuning
            only; None: off.
        db_offset, db_gain: calibration jitter for models on dB input, fine-tuning only: a
            random offset in +-``db_offset`` dB and a gain in 1 +- ``db_gain`` about the
            sample's median. 8-bit training chips reach dB through assumed affines; this keeps
            the model from relying on those assumptions to the decibel.
        object_crop: detection: the share of training crops placed to hold one whole object
            (a box drawn at random; centred on it when it is larger than the crop), the rest
            drawn anywhere. Ships are sparse: a 256 px crop of a zoomed 800 px chip is mostly
            open sea, so uniform crops rarely show a whole long hull. Measured on the ships
            folds, not adopted (training/README.md, "Ships: object-centred training crops").
    """

    flip: bool = True
    rot90: bool = True
    scale: list[float] | None = None
    db_offset: float = 0.0
    db_gain: float = 0.0
    object_crop: float = 0.0

    def __post_init__(self) -> None:
        if self.scale is not None and (
            len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 4
        ):
            raise ConfigError(
                f"augment.scale must be [min, max] with 0 < min <= max <= 4, got {self.scale}"
            )
        if self.db_offset < 0 or not 0 <= self.db_gain < 1:
            raise ConfigError(
                f"augment.db_offset must be >= 0 dB and db_gain in [0, 1), got "
                f"{self.db_offset} and {self.db_gain}"
            )
        if not 0 <= self.object_crop <= 1:
            raise ConfigError(
                f"augment.object_crop must be a share in [0, 1], got {self.object_crop}"
            )


@dataclass
class SourceConfig:
    """One pretraining data source.

    Attributes:
        kind: ``rasters`` (random windows of GDAL rasters of any size), ``chips`` (one image per
            sample, resized or cropped to the window), ``sar1m`` (the SAR-1M layout: ``SAR/``,
            ``OPT/``, ``paired.json``, ``unpaired.json``) or ``paired_folders`` (SAR and
            optical folders matched by file name).
        paths: rasters/chips: files, folders or globs; sar1m: its root folder.
        sar, optical: paired_folders: the two folders.
        units: how the stored SAR values map to physical units.
        bands: 1-based bands (channels) to read, one per model channel.
        windows_per_epoch: rasters: windows drawn per epoch.
        chip_mode: chips: ``resize`` to the window (the authors' recipe) or random ``crop``.
        max_items: use at most this many files (smoke runs).
        crops_per_item: chips and pairs in ``crop`` mode: samples drawn from each image per
            epoch, each its own random crop (a few large co-registered fragments then weigh
            as many crops as they hold, not as one sample among thousands of chips).
    """

    kind: str = "rasters"
    paths: list[str] = field(default_factory=list)
    sar: str | None = None
    optical: str | None = None
    units: UnitsConfig = field(default_factory=UnitsConfig)
    bands: list[int] = field(default_factory=lambda: [1])
    windows_per_epoch: int = 256
    chip_mode: str = "resize"
    max_items: int | None = None
    crops_per_item: int = 1


@dataclass
class PretrainDataConfig:
    """Pretraining data: every source is mixed into one epoch (paired and unpaired alike)."""

    root: str = "."
    sources: list[SourceConfig] = field(default_factory=list)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class PretrainModelConfig:
    """Which SARMAE to build.

    Attributes:
        preset: registry preset (``sarmae_test``, ``sarmae_vit_tiny`` ... ``_large``).
        img_size: window side in pixels (None: the preset's).
        overrides: any other :class:`sarmae_core.models.ModelConfig` key (``mask_ratio``,
            ``speckle``, ``sarc``, ``data`` ...).
    """

    preset: str = "sarmae_vit_tiny"
    img_size: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW with linear warmup and half-cosine decay.

    Attributes:
        steps: optimiser steps (pretraining; fine-tuning derives it from ``epochs``).
        epochs: fine-tuning epochs.
        base_lr: lr = base_lr x effective batch / 256 (MAE's rule) unless ``lr`` is given.
        lr: absolute peak learning rate.
        layer_decay: fine-tuning: block i of D gets lr x layer_decay^(D + 1 - i) (BEiT/MAE).
    """

    steps: int = 1000
    epochs: int = 30
    batch_size: int = 32
    accum_steps: int = 1
    base_lr: float = 1.5e-4
    lr: float | None = None
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 50
    min_lr: float = 0.0
    clip_grad: float = 1.0
    layer_decay: float = 0.75

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.accum_steps < 1:
            raise ConfigError("optim.batch_size and optim.accum_steps must be at least 1")
        if len(self.betas) != 2:
            raise ConfigError(f"optim.betas needs two values, got {self.betas}")


@dataclass
class RunConfig:
    """Where and how a run executes.

    Attributes:
        out_dir: outputs (checkpoints, logs, pictures, metrics).
        save_every: pretraining: write a resumable checkpoint every N optimiser steps.
        keep_last: resumable checkpoints kept (older ones are deleted once a newer is complete).
        threads: torch CPU threads (None: torch's default).
        amp: bf16 autocast on CUDA (ignored on the CPU).
        tensorboard: also log to TensorBoard when ``torch.utils.tensorboard`` imports.
        deterministic: torch's deterministic algorithms only (slower; same result on re-run).
        init_seed: the seed of the weights a run starts without (the task head, the MAE
            decoder); None: ``seed``. Fine-tunes that share it and the pretrained encoder, and
            differ in ``seed`` (data order, augmentation, dropout), start from one point and
            can be averaged into one model (``python -m sarmae_train.soup``).
        teacher_cache_mb: pretraining with SARC: keep the frozen teacher's features of each
            optical crop (file, box, flips) up to this size per process and reuse them
            instead of running the teacher again (0: run it every step).
    """

    out_dir: str = "runs/run"
    seed: int = 0
    init_seed: int | None = None
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    num_workers: int = 0
    threads: int | None = None
    amp: bool = True
    quicklook: bool = True
    tensorboard: bool = True
    deterministic: bool = False
    teacher_cache_mb: int = 1024


@dataclass
class PretrainRunConfig:
    """``sarmae-train pretrain --config``: the whole pretraining run."""

    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/pretrain"))


@dataclass
class FinetuneModelConfig:
    """The task model and its starting weights.

    Attributes:
        init: our SARMAE ``.safetensors`` checkpoint, the authors' ``.pth`` or None (scratch).
        linear_probe: classification: freeze the encoder, train the head only.
        pool: classification pooling, ``mean`` or ``cls``.
        channels: dense decoder width (None: the heads' default).
        detail: segmentation: channels of the full-resolution detail path; detection: of the
            stride-2 small-target stem fused into the stride-4 map (0: none).
        context_pool: segmentation: the encoder reads the input average-pooled by this factor
            (1 or 2; 2 needs ``detail``): twice the context per token at a quarter of the cost.
        centre_region: detection: train box size and offset on each object's centre region,
            not only its centre cell (see ``DetectionModel``): one box per long ship.
        init_head: start the whole task model from ``init`` (a fine-tuned model of ours with
            the same task and head), not only its encoder: e.g. the flood model from the water
            model, so that it starts where the water model is and learns only what differs.
        init_channels: with ``init_head``, for each input channel of this run the ``init``
            model's channel it starts from, or None for a channel that starts silent (zero
            weights): ``[null, 0]`` makes a (before, after) model start as the VV water model
            on the after date. None: the kernels are repeated and divided by the channel count.
        tile, tile_overlap: the tile side and overlap (px) ``predict`` and ``sarmae export``
            run the fine-tuned model at, recorded in its checkpoint (None: the training
            ``data.crop``, and a quarter of the tile); e.g. a detector that finds more ships
            with more context per tile than it was trained on.
        overrides: :class:`sarmae_core.models.ModelConfig` keys for a model built from scratch
            (a checkpoint's own config wins for the architecture and input units).
    """

    preset: str = "sarmae_vit_tiny"
    img_size: int | None = None
    init: str | None = None
    linear_probe: bool = False
    pool: str = "mean"
    drop_path_rate: float = 0.1
    channels: int | None = None
    detail: int = 0
    context_pool: int = 1
    centre_region: bool = False
    init_head: bool = False
    init_channels: list[int | None] | None = None
    tile: int | None = None
    tile_overlap: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class FinetuneDataConfig:
    """A labelled dataset read in place.

    Attributes:
        format: reader name (see ``sarmae_train.datasets.FORMATS``).
        path: dataset folder, relative to ``root``.
        train_split, test_split: split names the reader knows (usually ``train``, ``test``).
            ``test_split: null`` trains a final model on everything this section holds (e.g.
            every ETCI scene, ``options.test_scenes: []``) and skips the evaluation; its
            held-out figures come from runs that held data out (``sarmae-train evaluate``).
        units: how stored values map to physical units (8-bit chips: a declared assumption).
        bands: reader-specific channel names (e.g. ``[vv, vh]``); None: the reader's default.
        crop: random training crop side (None: whole images); evaluation uses whole images.
        max_train, max_test: at most this many samples (deterministic pick, for smoke runs).
        shots_per_class: classification few-shot: this many training samples per class.
        options: reader-specific settings (splits, targets), checked by the reader.
        extra_train: more labelled sets (each a data section of its own: format, path, units,
            options, crop) whose training splits join this one's; evaluation stays on this
            section's test split (``sarmae-train evaluate`` scores the others).
    """

    root: str = "."
    format: str = "class_folders"
    path: str = ""
    train_split: str = "train"
    test_split: str | None = "test"
    units: UnitsConfig = field(default_factory=UnitsConfig)
    bands: list[str] | None = None
    crop: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    shots_per_class: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    extra_train: list[FinetuneDataConfig] = field(default_factory=list)


@dataclass
class LossConfig:
    """Task losses (defaults: the authors' recipes in the SARMAE paper)."""

    label_smoothing: float = 0.1
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    size_weight: float = 1.0
    offset_weight: float = 1.0


@dataclass
class EvalConfig:
    """Evaluation settings.

    Attributes:
        batch_size: images per forward pass (whole images).
        score_threshold: detection: lowest score kept (low, so AP sees the whole curve).
        max_detections: detection: boxes kept per image (COCO: 100).
        nms_iou: detection: NMS IoU after CenterNet's peak test (None: peaks only).
        boxes: detection: ``hull`` fits each box to the bright hull under it, as predict does
            by default; ``model`` scores the model's own boxes.
        baseline: also score a classic method on the same images: ``otsu`` thresholding
            (segmentation of water) or ``cfar`` (CA-CFAR ship detection), or None.
        count_threshold: detection: the confidence at which found / missed / false objects
            are counted (the default ``det_conf`` an exported model carries).
        cfar: ``CfarParams`` settings of the ``cfar`` baseline (empty: its defaults).
        groups: detection: image-name prefixes per scene type (e.g. ``offshore``,
            ``inshore``), each scored on its own as well.
    """

    batch_size: int = 8
    score_threshold: float = 0.01
    max_detections: int = 100
    nms_iou: float | None = 0.5
    boxes: str = "hull"
    baseline: str | None = None
    count_threshold: float = 0.3
    cfar: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.boxes not in BOXES:
            raise ConfigError(f"eval.boxes must be one of {', '.join(BOXES)}, got {self.boxes!r}")


@dataclass
class FinetuneRunConfig:
    """``sarmae-train finetune --config``: the whole fine-tuning run."""

    task: str = "classification"
    model: FinetuneModelConfig = field(default_factory=FinetuneModelConfig)
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(base_lr=5e-4, betas=[0.9, 0.999], warmup_steps=20)
    )
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/finetune"))

"""Task models for fine-tuning: the encoder config, starting weights, saving and loading.

Starting weights (``model.init``): our SARMAE checkpoint (``.safetensors``: its ``encoder.*``
weights, and its config, so the input units and normalisation are the pretrained ones), a
fine-tuned task model of ours (its encoder), or the authors' released ``.pth``
(:func:`sarmae_core.models.load_authors_checkpoint`). A checkpoint of another preset or
architecture is refused, naming what differs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sarmae_core.contract.metadata import default_overlap
from sarmae_core.errors import CheckpointError, ConfigError
from sarmae_core.models import ModelConfig, load_authors_checkpoint, make_config
from sarmae_core.models.checkpoint import (
    adapt_patch_embed,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from sarmae_core.models.heads import TASKS, build_task_model

from .config import FinetuneRunConfig, resolve_data_path

log = logging.getLogger(__name__)

#: Encoder fields that must agree between a checkpoint and the run's preset.
_ARCH_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")


def check_task(task: str) -> None:
    if task not in TASKS:
        from .config import nearest

        raise ConfigError(
            f"unknown task {task!r}{nearest(task, TASKS)} (tasks: {', '.join(TASKS)})"
        )


def init_path(cfg: FinetuneRunConfig) -> Path | None:
    if not cfg.model.init:
        return None
    p = Path(cfg.model.init).expanduser()
    if not p.is_file():
        p2 = resolve_data_path(".", p)
        if not p2.is_file():
            raise CheckpointError(f"model.init {cfg.model.init} does not exist")
        p = p2
    return p


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key into nested dicts."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def encoder_config(cfg: FinetuneRunConfig, in_chans: int) -> ModelConfig:
    """The encoder/data config: the init checkpoint's (ours) or the preset's with overrides."""
    path = init_path(cfg)
    preset = make_config(cfg.model.preset)  # validates the preset name (nearest on typo)
    if path is not None and path.suffix == ".safetensors":
        config, _, _ = read_checkpoint(path)
        diffs = [
            f"{f} {getattr(config, f)} (run: {getattr(preset, f)})"
            for f in _ARCH_FIELDS
            if getattr(config, f) != getattr(preset, f)
        ]
        if config.preset != cfg.model.preset or diffs:
            raise CheckpointError(
                f"{path} holds a {config.preset} model ({', '.join(diffs) or 'same shape'}), "
                f"but this run asks for model.preset={cfg.model.preset}; set "
                f"model.preset={config.preset} or pick a checkpoint of that preset"
            )
        # The run's overrides (e.g. the data normalisation) apply on top of the checkpoint's
        # config, as they do on a preset; only the architecture must stay the checkpoint's.
        merged = _deep_merge(config.to_dict(), dict(cfg.model.overrides))
        merged["drop_path_rate"] = cfg.model.drop_path_rate
        merged["sarc"]["teacher"] = None
        result = ModelConfig.from_dict(merged)
        changed = [f for f in _ARCH_FIELDS if getattr(result, f) != getattr(config, f)]
        if changed:
            raise ConfigError(
                f"model.overrides change the architecture of {path} ({', '.join(changed)}); "
                "only data, masking and regularisation settings can change on a checkpoint"
            )
        if result.in_chans != in_chans:
            # A VV encoder can start a VV+VH model (its patch embedding is widened), but the
            # bands, their order and their statistics must then be declared for the new input.
            raise CheckpointError(
                f"{path} takes {result.in_chans} channel(s) {result.data.polarisations}; the data "
                f"give {in_chans}: set data.bands to match, or declare the new input with "
                "model.overrides.data (polarisations and normalisation mean/std per band)"
            )
        return result
    overrides = dict(cfg.model.overrides)
    overrides.setdefault("drop_path_rate", cfg.model.drop_path_rate)
    size = cfg.model.img_size or cfg.data.crop
    if size:
        overrides.setdefault("img_size", size)
    in_arg = None if "data" in overrides else in_chans
    return make_config(cfg.model.preset, in_chans=in_arg, **overrides)


def task_kwargs(cfg: FinetuneRunConfig) -> dict[str, Any]:
    if cfg.model.detail and cfg.task not in ("segmentation", "detection"):
        raise ConfigError("model.detail is a segmentation and detection option")
    if cfg.task == "classification":
        return {"linear_probe": cfg.model.linear_probe, "pool": cfg.model.pool}
    kwargs: dict[str, Any] = {"channels": cfg.model.channels} if cfg.model.channels else {}
    if cfg.task == "segmentation" and (cfg.model.detail or cfg.model.context_pool != 1):
        kwargs.update(detail=cfg.model.detail, context_pool=cfg.model.context_pool)
    elif cfg.model.context_pool != 1:
        raise ConfigError("model.context_pool is a segmentation option")
    elif cfg.model.detail:  # detection: the small-target stem
        kwargs["detail"] = cfg.model.detail
    if cfg.model.centre_region:
        if cfg.task != "detection":
            raise ConfigError("model.centre_region is a detection option")
        kwargs["centre_region"] = True
    return kwargs


def build_for_run(cfg: FinetuneRunConfig, config: ModelConfig, class_names: list[str]) -> Any:
    """The task model with its starting weights loaded (and a log of what was loaded)."""
    check_task(cfg.task)
    model = build_task_model(
        cfg.task, config, len(class_names), class_names=class_names, **task_kwargs(cfg)
    )
    model.inference = inference_settings(cfg)
    tile = model.inference.get("tile_size")
    step = getattr(model, "tile_multiple", config.patch_size)
    if tile is not None and (tile % step or not 0 <= model.inference["tile_overlap"] < tile):
        raise ConfigError(
            f"model.tile {tile} px with overlap {model.inference['tile_overlap']} px: the tile "
            f"must be a multiple of the model's {step} px and the overlap from 0 to below the tile"
        )
    path = init_path(cfg)
    if path is None:
        log.info("fine-tuning from scratch (no model.init)")
    elif path.suffix == ".safetensors" and cfg.model.init_head:
        init_config, tensors, extras = read_checkpoint(path)
        model.load_state_dict(whole_model_state(model, tensors, path, cfg.model.init_channels))
        _warn_normalisation(init_config, model.config, cfg.model.init_channels)
        log.info(
            "whole model (encoder and head) initialised from %s (%s, %s task model)",
            path, extras["kind"], extras.get("task"),
        )  # fmt: skip
    elif path.suffix == ".safetensors":
        _, tensors, extras = read_checkpoint(path)
        enc = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
        if not enc:
            raise CheckpointError(f"{path} holds no encoder.* weights")
        embed = "patch_embed.proj.weight"
        want = model.encoder.state_dict()[embed].shape[1]
        if embed in enc and enc[embed].shape[1] != want:
            log.info(
                "patch embedding widened from %d to %d input channel(s) (kernel repeated / %d)",
                enc[embed].shape[1], want, want,
            )  # fmt: skip
            enc[embed] = adapt_patch_embed(enc[embed], want)
        model.encoder.load_state_dict(enc, strict=True)
        log.info("encoder initialised from %s (%s, %d tensors)", path, extras["kind"], len(enc))
    else:
        if cfg.model.init_head:
            raise ConfigError("model.init_head needs a fine-tuned model of ours (.safetensors)")
        report = load_authors_checkpoint(path, model)
        log.info("encoder initialised from the authors' checkpoint %s:\n%s", path, report.summary())
    return model


def inference_settings(cfg: FinetuneRunConfig) -> dict[str, Any]:
    """How ``predict`` runs the fine-tuned model, recorded in its checkpoint: the tile
    (``model.tile``, else the training crop) and overlap (``model.tile_overlap``, else a
    quarter of the tile) and, for detection, the NMS IoU of the run's own evaluation
    (``eval.nms_iou``), so that a user's map is made as its metrics were measured."""
    settings: dict[str, Any] = {}
    tile = cfg.model.tile or cfg.data.crop
    if tile:
        settings["tile_size"] = int(tile)
        overlap = cfg.model.tile_overlap
        settings["tile_overlap"] = default_overlap(tile) if overlap is None else int(overlap)
    if cfg.task == "detection" and cfg.eval.nms_iou is not None:
        settings["det_iou_threshold"] = float(cfg.eval.nms_iou)
    return settings


#: Weights that read the input bands directly: the only ones whose shape depends on the
#: channel count, so the only ones adapted when a model starts from one with other bands.
INPUT_WEIGHTS = ("encoder.patch_embed.proj.weight", "detail_path.stem1.0.weight")


def map_input_channels(
    weight: torch.Tensor, channels: list[int | None], name: str, path: Path
) -> torch.Tensor:
    """An input weight ``[O, C_init, ...]`` for new channels: each copies the init model's
    channel named in ``channels``, or starts at zero (None: silent at the start)."""
    out = torch.zeros((weight.shape[0], len(channels), *weight.shape[2:]), dtype=weight.dtype)
    for k, source in enumerate(channels):
        if source is None:
            continue
        if not 0 <= source < weight.shape[1]:
            raise ConfigError(
                f"model.init_channels[{k}] = {source}, but {path} takes {weight.shape[1]} "
                f"channel(s) in {name}: use 0..{weight.shape[1] - 1} or null"
            )
        out[:, k] = weight[:, source]
    return out


def whole_model_state(
    model: Any, tensors: dict[str, torch.Tensor], path: Path, channels: list[int | None] | None
) -> dict[str, torch.Tensor]:
    """The task model's state from another fine-tuned model (``model.init_head``): every tensor
    must exist with the same shape, except the input weights when the bands differ, which are
    mapped by ``channels`` (or repeated and divided, as the encoder-only start does).

    Raises:
        CheckpointError: a head of another kind or shape, naming the first tensor that differs.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise CheckpointError(
            f"{path} has no {missing[0]} ({len(missing)} tensor(s) missing): model.init_head "
            "needs a fine-tuned model with this run's task and head options (detail, "
            "context_pool, channels); leave init_head out to start the encoder only"
        )
    state = {}
    for name, want in own.items():
        have = tensors[name]
        if have.shape != want.shape and name in INPUT_WEIGHTS:
            if channels is not None and len(channels) != want.shape[1]:
                raise ConfigError(
                    f"model.init_channels has {len(channels)} entries for {want.shape[1]} "
                    "input channel(s): give one per band of this run"
                )
            have = (
                map_input_channels(have, channels, name, path)
                if channels is not None
                else adapt_patch_embed(have, want.shape[1])
            )
        elif channels is not None and name in INPUT_WEIGHTS:
            have = map_input_channels(have, channels, name, path)
        if have.shape != want.shape:
            raise CheckpointError(
                f"{name} is {tuple(have.shape)} in {path} but {tuple(want.shape)} here: "
                "model.init_head needs the same head (classes, detail, channels)"
            )
        state[name] = have.to(want.dtype)
    return state


def _warn_normalisation(
    init: ModelConfig, run: ModelConfig, channels: list[int | None] | None
) -> None:
    """A channel copied from the init model starts where that model was only if both
    standardise it alike; say so when they do not (training then has more to undo)."""
    a, b = init.data.normalization, run.data.normalization
    pairs = (
        [(k, c) for k, c in enumerate(channels) if c is not None]
        if channels is not None
        else [(k, 0 if len(a.mean) == 1 else k) for k in range(len(b.mean))]
    )
    for k, c in pairs:
        if c < len(a.mean) and (a.mean[c], a.std[c]) != (b.mean[k], b.std[k]):
            log.warning(
                "channel %d starts from the init model's channel %d, but is standardised with "
                "mean %g, std %g instead of %g, %g: the start is not the init model's answer",
                k, c, b.mean[k], b.std[k], a.mean[c], a.std[c],
            )  # fmt: skip


def save_task_model(model: Any, path: Path, extra: dict[str, Any]) -> Path:
    """Write a fine-tuned model; the header holds task, class names and head options (from
    the model itself) plus ``extra`` (epoch, metrics, the data's declared units)."""
    return save_checkpoint(model, path, extra=extra, overwrite=True)


def load_task_model(path: Path) -> Any:
    """A fine-tuned task model, rebuilt from its header and loaded strictly."""
    model = load_checkpoint(path)
    if getattr(model, "task", None) not in TASKS:
        raise CheckpointError(
            f"{path} holds a {type(model).__name__}, not a fine-tuned task model; "
            "evaluate takes the model.safetensors that finetune writes"
        )
    return model

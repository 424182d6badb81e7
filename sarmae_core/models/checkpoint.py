"""Checkpoints: safetensors weights with the JSON model config in the file header.

No pickled objects are ever executed: our checkpoints are safetensors; the authors' released
``.pth`` files are read with ``torch.load(weights_only=True)`` (argparse.Namespace, which their
training script stores beside the weights, is allowed as a plain attribute container).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models import adapt_input_conv
from torch import nn

from ..errors import CheckpointError
from ..files import atomic_path
from .registry import ModelConfig

#: Header key holding the model config JSON inside our safetensors files.
CONFIG_KEY = "sarmae_config"
#: Header key naming the model class (pretraining MAE or a task model).
KIND_KEY = "sarmae_kind"
FORMAT_KEY = "sarmae_format"
FORMAT_VERSION = "1"

#: Weights that are never saved: the frozen optical teacher is rebuilt from its own source.
_SKIP_PREFIXES = ("sarc.teacher.",)


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (with a ``.config: ModelConfig``) to a safetensors file, atomically.

    Args:
        model: a SARMAE or task model.
        path: target ``.safetensors`` path.
        extra: more JSON-serialisable header entries (task, class names, training step, ...).
        overwrite: replace an existing file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    config: ModelConfig = model.config
    tensors = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(_SKIP_PREFIXES)
    }
    header = {
        FORMAT_KEY: FORMAT_VERSION,
        KIND_KEY: type(model).__name__,
        CONFIG_KEY: json.dumps(config.to_dict()),
    }
    # task models add what rebuilds their head (task, class names, head options)
    extras = {**getattr(model, "checkpoint_extras", dict)(), **(extra or {})}
    for key, value in extras.items():
        header[key] = json.dumps(value)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def encoder_only(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    overwrite: bool = False,
    dtype: str | None = None,
) -> Path:
    """The encoder of a SARMAE pretraining checkpoint, alone, for fine-tuning from.

    Fine-tuning reads only the ``encoder.*`` weights (and the config); the MAE decoder is 37 %
    of a ViT-Tiny checkpoint and is dropped, so a shared encoder costs the repository less.
    ``load_checkpoint`` still rebuilds a SARMAE model from it (with a new decoder).
    ``dtype="float16"`` halves the file again for encoders kept only as a starting point (the
    fine-tuned model trains in float32 from the rounded weights).
    """
    header, tensors = read_safetensors(src)
    if header.get(KIND_KEY, "SARMAE") != "SARMAE":
        raise CheckpointError(f"{src} holds a {header[KIND_KEY]}, not a SARMAE pretraining model")
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
    cast = getattr(torch, dtype) if dtype else None
    kept = {
        k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous()
        for k, v in tensors.items()
        if k.startswith("encoder.")
    }
    if not kept:
        raise CheckpointError(f"{src} holds no encoder.* weights")
    with atomic_path(dst) as tmp:
        save_file(kept, str(tmp), metadata={**header, "encoder_only": "true"})
    return dst


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Header metadata and tensors of a safetensors file.

    Raises:
        CheckpointError: missing, truncated or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated, or not a safetensors file ({exc}); the authors' "
            ".pth checkpoints load with load_authors_checkpoint"
        ) from exc


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict]:
    """Config, tensors and header extras of one of our checkpoints."""
    header, tensors = read_safetensors(path)
    if CONFIG_KEY not in header:
        raise CheckpointError(f"{path} has no sarmae model config in its header")
    config = ModelConfig.from_dict(json.loads(header[CONFIG_KEY]))
    extras = {
        k: json.loads(v) for k, v in header.items() if k not in (CONFIG_KEY, FORMAT_KEY, KIND_KEY)
    }
    extras["kind"] = header.get(KIND_KEY, "SARMAE")
    return config, tensors, extras


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored in ``path`` and load its weights strictly."""
    config, tensors, extras = read_checkpoint(path)
    kind = extras["kind"]
    if kind == "SARMAE":
        from .mae import SARMAE

        model: nn.Module = SARMAE(config)
    else:
        from . import heads

        cls = getattr(heads, kind, None)
        if cls is None:
            raise CheckpointError(f"{path} holds an unknown model kind {kind!r}")
        model = cls.from_checkpoint_extras(config, extras)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith(_SKIP_PREFIXES)]
    if extras.get("encoder_only"):  # written by encoder_only(): the MAE decoder stays new
        missing = [k for k in missing if k.startswith("encoder.")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its own config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model.to(map_location)


# ---------------------------------------------------------------------- authors' checkpoints
@dataclass
class LoadReport:
    """What an external checkpoint contributed to our encoder."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ours, left at their initial values
    unexpected: list[str] = field(default_factory=list)  # theirs, not used
    adapted: dict[str, str] = field(default_factory=dict)  # key -> what was done to it

    def summary(self) -> str:
        lines = [
            f"loaded {len(self.loaded)} tensors, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unused"
        ]
        lines += [f"  adapted {k}: {how}" for k, how in self.adapted.items()]
        if self.missing:
            lines.append(f"  missing: {', '.join(self.missing)}")
        if self.unexpected:
            groups = sorted({k.split(".")[0] for k in self.unexpected})
            lines.append(f"  unused groups: {', '.join(groups)}")
        return "\n".join(lines)


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_safetensors(path)[1]
    try:
        # The authors' script saves its argparse namespace next to the weights: allow that
        # class only; anything else that needs code to unpickle is refused.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} cannot be read as a weights-only checkpoint ({exc}); "
            "files that need arbitrary code to load are refused"
        ) from exc
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return obj


def _encoder_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip the authors' ``sar_encoder.`` prefix and keep the encoder's own keys."""
    prefixes = ("sar_encoder.", "module.sar_encoder.", "encoder.", "")
    prefix = next(p for p in prefixes if any(k.startswith(p + "blocks.") for k in state) or not p)
    decoder_like = ("decoder_", "mask_token")
    kept, dropped = {}, []
    for key, value in state.items():
        if prefix and not key.startswith(prefix):
            dropped.append(key)
            continue
        short = key[len(prefix) :]
        if short.startswith(decoder_like):
            dropped.append(key)
        else:
            kept[short] = value
    return kept, dropped


def _architecture_differences(enc_state: dict[str, torch.Tensor], target: nn.Module) -> list[str]:
    diffs = []
    ours = target.state_dict()
    w = enc_state.get("patch_embed.proj.weight")
    if w is None:
        return ["no patch embedding (patch_embed.proj.weight): not a ViT encoder checkpoint"]
    if w.shape[0] != target.embed_dim:
        diffs.append(f"embedding width {w.shape[0]} vs ours {target.embed_dim}")
    if tuple(w.shape[-2:]) != (target.patch_size, target.patch_size):
        diffs.append(f"patch size {tuple(w.shape[-2:])} vs ours {target.patch_size}")
    depth = 1 + max(
        (int(k.split(".")[1]) for k in enc_state if k.startswith("blocks.")), default=-1
    )
    if depth != len(target.blocks):
        diffs.append(f"depth {depth} blocks vs ours {len(target.blocks)}")
    fc1 = enc_state.get("blocks.0.mlp.fc1.weight")
    ours_fc1 = ours.get("blocks.0.mlp.fc1.weight")
    if fc1 is not None and ours_fc1 is not None and fc1.shape != ours_fc1.shape:
        diffs.append(f"MLP width {fc1.shape[0]} vs ours {ours_fc1.shape[0]}")
    return diffs


def adapt_patch_embed(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A patch-embedding weight ``[D, C, p, p]`` for ``in_chans`` input channels.

    One channel to several (a VV encoder fine-tuned on VV+VH): the kernel is repeated and divided
    by ``in_chans``, so standardised channels that agree give the pretrained response and the
    extra channels start from what the encoder learnt rather than from noise. RGB weights (the
    authors' checkpoints) follow timm's ``adapt_input_conv`` (summed for one channel).
    """
    weight = weight.float()
    if weight.shape[1] == in_chans:
        return weight
    if weight.shape[1] == 1:
        return weight.repeat(1, in_chans, 1, 1) / in_chans
    return adapt_input_conv(in_chans, weight)


def load_authors_checkpoint(
    path: str | os.PathLike, encoder: nn.Module, strict_architecture: bool = True
) -> LoadReport:
    """Load the SARMAE authors' released checkpoint (or any MAE/timm ViT) into our encoder.

    The released files hold keys prefixed ``sar_encoder.`` plus decoder and optical-branch
    weights, a 3-channel patch embedding and a 224 px position embedding. The encoder weights
    are taken; the patch embedding is adapted to our ``in_chans`` (summed for one channel: a
    grey image repeated to RGB gives the same response) and the position embedding resampled
    to our grid. Everything else is reported, never silently dropped.

    Raises:
        CheckpointError: unreadable file, or an encoder of another architecture (naming what
            differs).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    enc = getattr(encoder, "encoder", encoder)  # accept SARMAE or task models too
    state, dropped = _encoder_state(_read_torch_file(path))
    diffs = _architecture_differences(state, enc)
    if diffs and strict_architecture:
        raise CheckpointError(
            f"{path} is a different architecture from this model: {'; '.join(diffs)}. "
            "Pick the preset that matches the checkpoint (ViT-B/16: sarmae_vit_base, "
            "ViT-L/16: sarmae_vit_large)."
        )
    report = LoadReport(unexpected=sorted(dropped))
    ours = enc.state_dict()
    to_load = {}
    for key, value in state.items():
        if key not in ours:
            report.unexpected.append(key)
            continue
        target_shape = ours[key].shape
        if key == "patch_embed.proj.weight" and value.shape[1] != target_shape[1]:
            value = adapt_patch_embed(value, target_shape[1])
            report.adapted[key] = f"input channels {state[key].shape[1]} -> {target_shape[1]}"
        elif key == "pos_embed" and value.shape != target_shape:
            old = math.isqrt(value.shape[1] - 1)
            if old * old != value.shape[1] - 1:
                raise CheckpointError(
                    f"{path}: pos_embed of {value.shape[1]} tokens is not CLS + a square grid"
                )
            value = resample_abs_pos_embed(
                value.float(), new_size=list(enc.grid_size), old_size=[old, old],
                num_prefix_tokens=1,
            )  # fmt: skip
            report.adapted[key] = f"grid {old}x{old} -> {enc.grid_size[0]}x{enc.grid_size[1]}"
        if value.shape != target_shape:
            raise CheckpointError(
                f"{path}: tensor {key} has shape {tuple(value.shape)}, ours {tuple(target_shape)}"
            )
        to_load[key] = value.to(ours[key].dtype)
        report.loaded.append(key)
    report.missing = sorted(set(ours) - set(to_load))
    enc.load_state_dict(to_load, strict=False)
    return report

"""Optimiser pieces shared by pretraining and fine-tuning.

Learning-rate schedule (linear warmup, half-cosine), parameter groups (no weight decay on
biases, norms and tokens; layer-wise lr decay for ViT blocks), and the conversion of an
optimiser's state to flat tensors plus JSON, so that resumable checkpoints hold no pickles.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import nn

from sarmae_core.errors import CheckpointError

#: Parameter names (suffixes) that never get weight decay besides 1-D tensors.
_NO_DECAY_SUFFIXES = ("cls_token", "mask_token", "pos_embed")


def lr_at(step: int, total: int, warmup: int, peak: float, min_lr: float = 0.0) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then half-cosine to ``min_lr`` at ``total``.

    Args:
        step: 0-based optimiser step about to be taken.
        total: steps of the whole run.
        warmup: warmup steps (0: none).
        peak: learning rate after warmup.
        min_lr: floor reached at the last step.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def _no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim <= 1 or name.endswith(_NO_DECAY_SUFFIXES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and biases/norms/tokens/position embeddings without decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if _no_decay(name, p) else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def layer_id(name: str, depth: int, prefix: str = "encoder.") -> int:
    """Depth of a parameter for layer-wise decay: embeddings 0, block i -> i + 1, rest depth + 1."""
    if not name.startswith(prefix):
        return depth + 1  # heads and decoders train at the full rate
    short = name[len(prefix) :]
    if short.startswith(("patch_embed", "cls_token", "pos_embed")):
        return 0
    if short.startswith("blocks."):
        return int(short.split(".")[1]) + 1
    return depth + 1  # the encoder's final norm sits with the head, as in BEiT/MAE


def layer_decay_groups(
    model: nn.Module, weight_decay: float, layer_decay: float, depth: int
) -> list[dict]:
    """Parameter groups with ``lr_scale = layer_decay ** (depth + 1 - layer_id)`` (MAE fine-tuning).

    With ``layer_decay = 1`` this is :func:`param_groups` split by layer.
    """
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lid = layer_id(name, depth)
        nd = _no_decay(name, p)
        g = groups.setdefault(
            (lid, nd),
            {
                "params": [],
                "weight_decay": 0.0 if nd else weight_decay,
                "lr_scale": layer_decay ** (depth + 1 - lid),
                "layer": lid,
            },
        )
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr`` times its ``lr_scale``."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def peak_lr(base_lr: float, lr: float | None, effective_batch: int) -> float:
    """``lr`` if given, else MAE's rule ``base_lr * effective_batch / 256``."""
    return lr if lr is not None else base_lr * effective_batch / 256


# ------------------------------------------------------------------ optimiser state, no pickles
_STATE_PREFIX = "optim.state."


def optimizer_state_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten ``optimizer.state_dict()`` to tensors ``optim.state.<param>.<name>`` and JSON.

    The JSON holds the param groups (hyper-parameters and parameter indices) and any non-tensor
    per-parameter state; tensors are copied to the CPU unchanged (bit-exact).
    """
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_STATE_PREFIX}{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = []
    for g in sd["param_groups"]:
        plain = {}
        for k, v in g.items():
            if isinstance(v, torch.Tensor):
                raise CheckpointError(f"optimiser group setting {k!r} is a tensor; use a number")
            plain[k] = list(v) if isinstance(v, tuple) else v
        groups.append(plain)
    return tensors, json.dumps({"param_groups": groups, "scalars": scalars})


def optimizer_state_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: str
) -> None:
    """Inverse of :func:`optimizer_state_to_tensors`: load into ``optimizer`` (same groups)."""
    info = json.loads(meta)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(_STATE_PREFIX):
            continue
        idx, name = key[len(_STATE_PREFIX) :].split(".", 1)
        # A copy: the optimiser updates its state in place and must not alias the caller's.
        state.setdefault(int(idx), {})[name] = value.clone()
    for idx, values in info["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = info["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    ours = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in ours]:
        raise CheckpointError(
            "the checkpoint's optimiser has other parameter groups than this run's model "
            f"({[len(g['params']) for g in groups]} vs {[len(g['params']) for g in ours]})"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})

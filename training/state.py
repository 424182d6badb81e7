"""Resumable training checkpoints: one safetensors file per save, no pickles, written atomically.

A file ``state-step00000050.safetensors`` holds the model (``model.*``), the optimiser state
flattened to tensors (``optim.state.*``), every rank's RNG states (``rng.<rank>.*``) and, in
its JSON header, the step, epoch, position in the epoch, the model and run configs and a CRC32
of every tensor. It is written to a temporary file, flushed to disk and moved in place with
``os.replace``; older files are deleted only once a newer one is complete, so a run killed at
any moment leaves at least one whole checkpoint. A file that fails to parse or whose CRC does
not match is refused with the reason and never deleted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from sarmae_core.errors import CheckpointError
from sarmae_core.files import atomic_path
from sarmae_core.models import ModelConfig
from sarmae_core.models.checkpoint import read_safetensors

from .optim import optimizer_state_from_tensors, optimizer_state_to_tensors

log = logging.getLogger(__name__)

FORMAT = "sarmae-train-state"
VERSION = "1"
STATE_RE = re.compile(r"^state-step(\d+)\.safetensors$")
#: Frozen teachers are rebuilt from their own source, never saved (as in sarmae checkpoints).
_SKIP_PREFIXES = ("sarc.teacher.",)


def state_path(folder: Path, step: int) -> Path:
    return folder / f"state-step{step:08d}.safetensors"


# ------------------------------------------------------------------------------ RNG
def capture_rng() -> dict[str, Any]:
    """This process's torch (CPU and current CUDA device), numpy-global and python RNG states."""
    # Legacy global numpy RNG on purpose: it is what third-party code draws from.
    np_state = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        # current device only: each rank drives one GPU, and touching the others would
        # create a CUDA context on every GPU from every rank
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0])
    name, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (name, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached)
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _rng_to_tensors(per_rank: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], str]:
    tensors, meta = {}, []
    for r, s in enumerate(per_rank):
        tensors[f"rng.{r}.torch"] = s["torch"]
        for i, c in enumerate(s["cuda"]):
            tensors[f"rng.{r}.cuda.{i}"] = c
        tensors[f"rng.{r}.numpy_keys"] = s["numpy_keys"]
        version, internal, gauss = s["python"]
        meta.append(
            {
                "numpy": s["numpy"],
                "python": [version, list(internal), gauss],
                "cuda": len(s["cuda"]),
            }
        )
    return tensors, json.dumps(meta)


def _rng_from_tensors(tensors: dict[str, torch.Tensor], meta: str) -> list[dict[str, Any]]:
    out = []
    for r, m in enumerate(json.loads(meta)):
        out.append(
            {
                "torch": tensors[f"rng.{r}.torch"],
                "cuda": [tensors[f"rng.{r}.cuda.{i}"] for i in range(m["cuda"])],
                "numpy_keys": tensors[f"rng.{r}.numpy_keys"],
                "numpy": m["numpy"],
                "python": m["python"],
            }
        )
    return out


# ------------------------------------------------------------------------------ checksums
def _crc(tensors: dict[str, torch.Tensor]) -> str:
    crc = 0
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous().reshape(-1)
        crc = zlib.crc32(key.encode(), crc)
        crc = zlib.crc32(t.view(torch.uint8).numpy().tobytes(), crc)
    return f"{crc:08x}"


# ------------------------------------------------------------------------------ save / load
@dataclass
class TrainState:
    """A loaded training checkpoint."""

    path: Path
    step: int
    epoch: int
    position: int  # micro-batches of this epoch already consumed (per rank)
    world_size: int
    model_config: ModelConfig
    run_config: dict[str, Any]
    model: dict[str, torch.Tensor]
    optim_tensors: dict[str, torch.Tensor]
    optim_meta: str
    rng: list[dict[str, Any]]
    extra: dict[str, Any]

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> None:
        """Load weights, optimiser state and this rank's RNG states."""
        missing, unexpected = model.load_state_dict(self.model, strict=False)
        missing = [k for k in missing if not k.startswith(_SKIP_PREFIXES)]
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path} does not fit this model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        optimizer_state_from_tensors(optimizer, self.optim_tensors, self.optim_meta)
        if rank < len(self.rng):
            restore_rng(self.rng[rank])
        else:
            log.warning(
                "%s has RNG states for %d process(es), this run has more: rank %d "
                "continues with fresh random numbers",
                self.path,
                len(self.rng),
                rank,
            )


def save_state(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    epoch: int,
    position: int,
    rng_per_rank: list[dict[str, Any]],
    run_config: dict[str, Any],
    keep_last: int = 2,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``state-step<step>.safetensors`` atomically, then delete all but ``keep_last``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith(_SKIP_PREFIXES)
    }
    opt_tensors, opt_meta = optimizer_state_to_tensors(optimizer)
    rng_tensors, rng_meta = _rng_to_tensors(rng_per_rank)
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kind": type(model).__name__,
        "step": str(step),
        "epoch": str(epoch),
        "position": str(position),
        "world_size": str(len(rng_per_rank)),
        "model_config": json.dumps(model.config.to_dict()),
        "run_config": json.dumps(run_config),
        "optim": opt_meta,
        "rng": rng_meta,
        "extra": json.dumps(extra or {}),
        "crc32": _crc(tensors),
    }
    path = state_path(folder, step)
    with atomic_path(path, fsync=True) as tmp:  # on disk before it gets the real name
        save_file(tensors, str(tmp), metadata=header)
    _fsync_dir(folder)
    for old in list_states(folder)[keep_last:]:
        old.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_states(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, newest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STATE_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def load_state(path: Path) -> TrainState:
    """Read and verify one checkpoint.

    Raises:
        CheckpointError: missing, unparsable, not a training checkpoint, or CRC mismatch.
    """
    header, tensors = read_safetensors(path)
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a resumable training checkpoint (no {FORMAT!r} header); "
            "model-only checkpoints can start a fine-tuning (model.init), not resume a run"
        )
    if _crc(tensors) != header.get("crc32"):
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the stored CRC32")
    return TrainState(
        path=path,
        step=int(header["step"]),
        epoch=int(header["epoch"]),
        position=int(header["position"]),
        world_size=int(header["world_size"]),
        model_config=ModelConfig.from_dict(json.loads(header["model_config"])),
        run_config=json.loads(header["run_config"]),
        model={k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
        optim_tensors={k: v for k, v in tensors.items() if k.startswith("optim.")},
        optim_meta=header["optim"],
        rng=_rng_from_tensors(tensors, header["rng"]),
        extra=json.loads(header.get("extra", "{}")),
    )


def find_resume_state(folder: Path, explicit: Path | None = None) -> TrainState:
    """The checkpoint to resume from: ``explicit``, or the newest readable one in ``folder``.

    A corrupt newest file is refused with a warning naming it and why (the file is kept for
    inspection) and the next older one is used.

    Raises:
        CheckpointError: ``explicit`` is unreadable, or no readable checkpoint exists.
    """
    if explicit is not None:
        return load_state(explicit)
    candidates = list_states(folder)
    if not candidates:
        raise CheckpointError(
            f"nothing to resume in {folder}: no state-step*.safetensors checkpoints; "
            "drop --resume to start a new run"
        )
    refused = []
    for path in candidates:
        try:
            state = load_state(path)
        except CheckpointError as exc:
            log.warning("refusing checkpoint %s: %s; trying an older one", path.name, exc)
            refused.append(f"{path.name}: {exc}")
            continue
        if refused:
            log.warning(
                "resuming from older checkpoint %s (step %d); refused: %s",
                path.name,
                state.step,
                "; ".join(refused),
            )
        return state
    raise CheckpointError(f"no readable checkpoint in {folder}: {'; '.join(refused)}")


def remove_temporary_files(folder: Path) -> int:
    """Delete temporary files a killed save left behind; returns how many."""
    n = 0
    if folder.is_dir():
        for p in folder.glob(".state-step*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def check_same_model(state: TrainState, config: ModelConfig) -> None:
    """Refuse to resume into a model built differently (another preset or architecture)."""
    a, b = state.model_config.to_dict(), config.to_dict()
    if a == b:
        return
    diffs = [
        f"{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in a if a[k] != b.get(k)
    ]
    raise CheckpointError(
        f"{state.path} was written by another model ({'; '.join(diffs)}); resume with the same "
        "model settings, or start a new run in another run.out_dir"
    )

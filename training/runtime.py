"""The run machinery both training loops share: processes and devices, seeding, the output
folder, the optimiser and its step, DDP, logging, checkpoints and exact resume.

:func:`~sarmae_train.pretrain.run_pretraining` and :func:`~sarmae_train.finetune.run_finetune`
keep what differs (their data, model, loss and when they save); everything else is here, once,
so the two cannot drift apart (they had: only pretraining honoured ``run.deterministic`` and
gave each process its own random stream).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from sarmae_core.errors import InputError, SarmaeError

from . import distributed as D
from .config import OptimConfig, RunConfig
from .logs import Progress, RunLogger
from .optim import peak_lr, set_lr
from .sampler import ResumableSampler
from .state import (
    TrainState,
    capture_rng,
    check_same_model,
    find_resume_state,
    list_states,
    remove_temporary_files,
    save_state,
)

log = logging.getLogger(__name__)


class NonFiniteLossError(SarmaeError, FloatingPointError):
    """The loss became NaN or infinite: the run stops with where it happened."""


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global RNG third-party code may use
    random.seed(seed)


class Runtime:
    """One training process of a run (rank ``rank`` of ``world``), from start to shutdown.

    Made before the model: it joins the process group, picks the device, applies
    ``run.threads`` and ``run.deterministic``, refuses an output folder that already holds
    checkpoints unless resuming, and seeds every process alike (identical initial weights).

    Args:
        run: the run section of the config.
        plain: the whole config as plain data (written to ``config.json``, kept in checkpoints).
        resume: None (a new run), ``"latest"`` or a checkpoint path.
    """

    def __init__(self, run: RunConfig, plain: dict[str, Any], resume: str | None) -> None:
        self.distributed = D.init_distributed()
        self.rank, self.world, self.local_rank = D.rank_world()
        self.device = D.device_for(self.local_rank)
        if run.threads:
            torch.set_num_threads(run.threads)
        if run.deterministic:
            torch.use_deterministic_algorithms(True)
        self.run, self.plain, self.resume = run, plain, resume
        self.out_dir = Path(run.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        if resume is None and list_states(self.ckpt_dir):
            raise FileExistsError(
                f"{self.out_dir} already holds checkpoints; pass --resume to continue that run "
                "or set run.out_dir to a new folder"
            )
        # same on every rank: identical initial weights
        seed_everything(run.seed if run.init_seed is None else run.init_seed)

    @property
    def main(self) -> bool:
        """This process writes the files (rank 0)."""
        return self.rank == 0

    @property
    def amp(self) -> bool:
        """bf16 autocast: asked for and on a GPU."""
        return self.run.amp and self.device.type == "cuda"

    def optimizer(
        self, groups: Iterable[dict[str, Any]], o: OptimConfig
    ) -> tuple[torch.optim.Optimizer, float]:
        """AdamW at the peak learning rate of the effective batch, and that peak."""
        peak = peak_lr(o.base_lr, o.lr, self.effective_batch(o))
        return torch.optim.AdamW(list(groups), lr=peak, betas=tuple(o.betas)), peak

    def effective_batch(self, o: OptimConfig) -> int:
        return o.batch_size * o.accum_steps * self.world

    def sampler(self, samples: int, o: OptimConfig) -> tuple[ResumableSampler, int]:
        """This process's sampler and its micro-batches per epoch (a multiple of accum_steps).

        Raises:
            InputError: fewer samples per process than one optimiser step takes.
        """
        sampler = ResumableSampler(samples, self.rank, self.world, self.run.seed)
        per_epoch = sampler.per_rank // o.batch_size // o.accum_steps * o.accum_steps
        if per_epoch == 0:
            raise InputError(
                f"one epoch has {sampler.per_rank} samples per process, fewer than batch_size "
                f"x accum_steps = {o.batch_size * o.accum_steps}; add data or lower "
                "optim.batch_size"
            )
        return sampler, per_epoch

    def restore(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer
    ) -> TrainState | None:
        """Resume (weights, optimiser, every rank's RNG) when asked; else give each process
        its own random stream from here on (different masks, speckle and augmentation)."""
        if self.resume is None:
            seed_everything(self.run.seed + self.rank)
            return None
        if self.main:
            remove_temporary_files(self.ckpt_dir)
        explicit = None if self.resume == "latest" else Path(self.resume)
        state = find_resume_state(self.ckpt_dir, explicit)
        check_same_model(state, model.config)
        _compare_run_configs(state, self.plain)
        if state.world_size != self.world:
            log.warning(
                "checkpoint written by %d process(es), resuming with %d: the data order "
                "differs from an uninterrupted run",
                state.world_size,
                self.world,
            )
        state.restore(model, optimizer, self.rank)
        return state

    def wrap(self, model: torch.nn.Module, find_unused: bool = False) -> torch.nn.Module:
        """The model as the loop calls it: DDP across processes, else itself."""
        if not self.distributed:
            return model
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)

    def logger(self, columns: list[str], resume_step: int | None) -> RunLogger | None:
        """Rank 0: the output folder, ``config.json`` and the metrics log; others: None."""
        if not self.main:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(json.dumps(self.plain, indent=2))
        return RunLogger(self.out_dir, columns, self.run.tensorboard, resume_step=resume_step)

    def progress(self, total: int, step: int) -> Progress | None:
        """A progress line on rank 0 when info is logged."""
        return Progress(total, step) if self.main and log.isEnabledFor(logging.INFO) else None

    @staticmethod
    def finite(loss: torch.Tensor) -> bool:
        """The loss is finite on every process (collective: all stop together on NaN/inf)."""
        return D.all_finite(loss)

    @staticmethod
    def step(
        model: torch.nn.Module, optimizer: torch.optim.Optimizer, lr: float, clip_grad: float
    ) -> None:
        """One optimiser step at ``lr``, gradients clipped to ``clip_grad`` (0: not)."""
        set_lr(optimizer, lr)
        if clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def save_state(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        step: int,
        epoch: int,
        position: int,
    ) -> None:
        """A resumable checkpoint (collective: every process calls it at the same point)."""
        rngs = D.gather_objects(capture_rng())
        if self.main:
            save_state(
                self.ckpt_dir, model, optimizer, step=step, epoch=epoch, position=position,
                rng_per_rank=rngs, run_config=self.plain, keep_last=self.run.keep_last,
            )  # fmt: skip

    @staticmethod
    def close() -> None:
        D.shutdown()


def _compare_run_configs(state: TrainState, now: dict[str, Any]) -> None:
    """Warn about data and optimiser settings changed since the checkpoint (the run goes on)."""
    before = state.run_config
    diffs = []
    for section in ("data", "optim"):
        for k, v in now.get(section, {}).items():
            if before.get(section, {}).get(k) != v:
                diffs.append(f"{section}.{k}: {before.get(section, {}).get(k)!r} -> {v!r}")
    if diffs:
        log.warning(
            "resuming with changed settings (%s): the result will differ from an uninterrupted run",
            "; ".join(diffs),
        )

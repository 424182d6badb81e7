"""SARMAE pretraining: AdamW, warmup + cosine, clipping, accumulation, AMP, DDP, exact resume.

Run assembly (:func:`run_pretraining`) and the per-step work (:func:`train_step`) stay apart, as
in MAE. Distributed runs go through torchrun (one process per device, PyTorch DDP); only rank 0
writes files. A resumed run restores weights, optimiser state, every rank's RNG states and the
position inside the epoch, so it reaches bit-for-bit the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sarmae_core.errors import InputError, SarmaeError
from sarmae_core.models import SARMAE, create_model, save_checkpoint

from . import distributed as D
from .config import PretrainRunConfig, to_plain
from .data import build_pretrain_dataset, collate_pretrain
from .logs import Progress, RunLogger
from .optim import lr_at, param_groups, peak_lr, set_lr
from .quicklook import save_quicklook
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

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "loss_rec", "loss_align", "images_per_s", "seconds"]


class NonFiniteLossError(SarmaeError, FloatingPointError):
    """Training stopped on a NaN or infinite loss."""


@dataclass
class DebugOptions:
    """Test hooks, hidden from ``--help``.

    Attributes:
        step_sleep: seconds to sleep after each optimiser step (lets a test kill a run between
            checkpoints).
        dump_weights: every rank writes ``debug/rank<r>.json`` with a SHA-256 of its weights
            and the sample indices it trained on (the one exception to "only rank 0 writes").
    """

    step_sleep: float = 0.0
    dump_weights: bool = False
    seen: list[int] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global RNG third-party code may use
    random.seed(seed)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the state dict (names and bytes), teacher excluded."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if k.startswith("sarc.teacher."):
            continue
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_pretrain_model(cfg: PretrainRunConfig) -> SARMAE:
    """The SARMAE of ``cfg.model``; input channels follow the sources' band lists."""
    bands = {len(s.bands) for s in cfg.data.sources} or {1}
    if len(bands) > 1:
        raise InputError(f"all sources must read the same number of bands, got {sorted(bands)}")
    overrides = dict(cfg.model.overrides)
    if cfg.model.img_size:
        overrides["img_size"] = cfg.model.img_size
    in_chans = None if "data" in overrides else bands.pop()
    return create_model(cfg.model.preset, in_chans=in_chans, **overrides)


def check_value_range(model: torch.nn.Module, images: list[torch.Tensor], what: list[str]) -> None:
    """Warn when data sit far outside the model's normalisation: usually undeclared units
    (8-bit DN read as dB, intensity read as amplitude) rather than unusual scenes."""
    with torch.no_grad():
        for x, name in zip(images, what, strict=True):
            z = model.normalize(x.unsqueeze(0).float())
            level = float(z.abs().mean())
            if level > 5.0:
                log.warning(
                    "%s: values sit %.0f std from the model's normalisation (%s); check the "
                    "declared units (units, scale, offset) of this data",
                    name, level, model.config.data.units,
                )  # fmt: skip


def train_step(
    ddp: torch.nn.Module, batch: dict[str, Any], device: torch.device, amp: bool, with_sarc: bool
) -> Any:
    """Forward pass of one micro-batch; returns the model output (loss not yet scaled)."""
    images = batch["sar"].to(device, non_blocking=True)
    optical, paired = batch["optical"], batch["paired"]
    if with_sarc and optical is None:  # keeps the SARC projection in the graph (DDP)
        optical = torch.zeros(images.shape[0], 3, *images.shape[-2:])
    if optical is not None:
        optical, paired = optical.to(device), paired.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        return ddp(images, optical, paired)


def _compare_run_configs(state: TrainState, now: dict[str, Any]) -> None:
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


def run_pretraining(
    cfg: PretrainRunConfig, resume: str | None = None, debug: DebugOptions | None = None
) -> dict[str, Any]:
    """Pretrain as configured; returns a summary (also written to ``summary.json``).

    Args:
        cfg: the run configuration.
        resume: None (new run), ``"latest"`` (newest readable checkpoint in
            ``run.out_dir/checkpoints``) or a checkpoint path.
        debug: test hooks.
    """
    debug = debug or DebugOptions()
    distributed = D.init_distributed()
    rank, world, local_rank = D.rank_world()
    device = D.device_for(local_rank)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    out_dir = Path(cfg.run.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if resume is None and list_states(ckpt_dir):
        raise FileExistsError(
            f"{out_dir} already holds checkpoints; pass --resume to continue that run or set "
            "run.out_dir to a new folder"
        )
    seed_everything(cfg.run.seed)  # same on every rank: identical initial weights
    model = build_pretrain_model(cfg)
    window = model.config.img_size
    dataset = build_pretrain_dataset(cfg.data, window, model.config.data.units, cfg.run.seed)
    firsts = [int(o) for o in dataset.offsets[:-1]]
    probes = [(dataset[i], s) for i, s in zip(firsts, cfg.data.sources, strict=True)]
    probes = [(p["sar"], f"source {s.kind} {s.paths or s.sar}") for p, s in probes if p]
    check_value_range(model, [x for x, _ in probes], [w for _, w in probes])
    with_sarc = model.sarc is not None
    if dataset.has_optical and not with_sarc:
        log.warning(
            "some samples have optical pairs but the model has no SARC teacher "
            "(model.overrides.sarc.teacher): the alignment loss is off"
        )
    if with_sarc and not dataset.has_optical:
        log.warning("the model has a SARC teacher but no source has optical pairs")

    o = cfg.optim
    eff_batch = o.batch_size * o.accum_steps * world
    peak = peak_lr(o.base_lr, o.lr, eff_batch)
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        param_groups(model, o.weight_decay), lr=peak, betas=tuple(o.betas)
    )
    step, epoch, position = 0, 0, 0
    plain = to_plain(cfg)
    if resume is not None:
        if rank == 0:
            remove_temporary_files(ckpt_dir)
        state = find_resume_state(ckpt_dir, None if resume == "latest" else Path(resume))
        check_same_model(state, model.config)
        _compare_run_configs(state, plain)
        if state.world_size != world:
            log.warning(
                "checkpoint written by %d process(es), resuming with %d: the data order "
                "differs from an uninterrupted run",
                state.world_size,
                world,
            )
        state.restore(model, optimizer, rank)
        step, epoch, position = state.step, state.epoch, state.position
        log.info("resumed from %s at step %d (epoch %d)", state.path, step, epoch)
    else:
        seed_everything(cfg.run.seed + rank)  # different masks and speckle on each rank
    ddp: torch.nn.Module = model
    if distributed:
        ddp = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )

    sampler = ResumableSampler(len(dataset), rank, world, cfg.run.seed)
    per_epoch = sampler.per_rank // o.batch_size // o.accum_steps * o.accum_steps
    if per_epoch == 0:
        raise InputError(
            f"one epoch has {sampler.per_rank} samples per process, fewer than batch_size x "
            f"accum_steps = {o.batch_size * o.accum_steps}; add data or lower the batch size"
        )
    # Own generator: the loader must not draw from the global RNG (exact resume).
    loader = DataLoader(
        dataset,
        o.batch_size,
        sampler=sampler,
        num_workers=cfg.run.num_workers,
        collate_fn=collate_pretrain,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    if position >= per_epoch:
        epoch, position = epoch + 1, 0
    logger = None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(plain, indent=2))
        logger = RunLogger(
            out_dir,
            LOG_COLUMNS,
            cfg.run.tensorboard,
            resume_step=step if resume is not None else None,
        )
    use_amp = cfg.run.amp and device.type == "cuda"
    log.info(
        "pretraining %s: %d steps, effective batch %d, peak lr %.2e, %d process(es) on %s, "
        "%d samples per epoch",
        model.config.preset,
        o.steps,
        eff_batch,
        peak,
        world,
        device,
        len(dataset),
    )
    progress = Progress(o.steps, step) if rank == 0 and log.isEnabledFor(logging.INFO) else None
    t0, seen, start_step, last = time.perf_counter(), 0, step, {}
    images = None
    while step < o.steps:
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, start=position * o.batch_size)
        batches = iter(loader)
        while position < per_epoch and step < o.steps:
            batch = next(batches)
            position += 1
            if batch is None:
                if distributed:
                    raise InputError(f"a whole batch is unreadable on rank {rank} (epoch {epoch})")
                continue
            images = batch["sar"]
            sync = position % o.accum_steps == 0
            ctx = ddp.no_sync() if distributed and not sync else contextlib.nullcontext()
            with ctx:
                out = train_step(ddp, batch, device, use_amp, with_sarc)
                if not D.all_finite(out.loss):
                    raise NonFiniteLossError(
                        f"loss became {out.loss.item()} at step {step + 1} (epoch {epoch}, "
                        f"micro-batch {position} of the epoch, rank {rank}); the batch held "
                        f"{'; '.join(batch['where'][:4])}: lower the learning rate or check "
                        "these images for extreme values"
                    )
                (out.loss / o.accum_steps).backward()
            seen += images.shape[0] * world
            if debug.dump_weights:
                debug.seen += batch["index"]
            if not sync:
                continue
            set_lr(optimizer, lr_at(step, o.steps, o.warmup_steps, peak, o.min_lr))
            if o.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last = {
                "loss": out.loss.item(),
                "loss_rec": out.loss_rec.item(),
                "loss_align": out.loss_align.item(),
            }
            wall = time.perf_counter() - t0
            if logger and (step % cfg.run.log_every == 0 or step == o.steps):
                logger.write(
                    {
                        "step": step,
                        "epoch": epoch,
                        "lr": optimizer.param_groups[0]["lr"],
                        **last,
                        "images_per_s": seen / wall,
                        "seconds": wall,
                    }
                )
            if progress:
                progress.update(step, loss=last["loss"])
            if step % cfg.run.save_every == 0 or step == o.steps:
                rngs = D.gather_objects(capture_rng())  # collective: every rank, same point
                if rank == 0:
                    save_state(
                        ckpt_dir,
                        model,
                        optimizer,
                        step=step,
                        epoch=epoch,
                        position=position,
                        rng_per_rank=rngs,
                        run_config=plain,
                        keep_last=cfg.run.keep_last,
                    )
                    save_checkpoint(
                        model,
                        out_dir / "checkpoint.safetensors",
                        extra={"step": step, "epoch": epoch},
                        overwrite=True,
                    )
            if debug.step_sleep:
                time.sleep(debug.step_sleep)
        if position >= per_epoch:
            if rank == 0 and cfg.run.quicklook and images is not None:
                save_quicklook(model, images.float(), out_dir / f"recon_epoch{epoch:03d}.png")
            if dataset.skipped:
                log.warning(
                    "%d unreadable sample(s) skipped so far (rank %d)", len(dataset.skipped), rank
                )
            epoch, position = epoch + 1, 0
    wall = time.perf_counter() - t0
    summary = {
        "steps": step,
        "epochs_started": epoch + (position > 0),
        "seconds": wall,
        "images_per_s": seen / max(wall, 1e-9),
        "steps_this_session": step - start_step,
        "skipped_samples": len(dataset.skipped),
        "world_size": world,
        **last,
    }
    if debug.dump_weights:
        dump = out_dir / "debug" / f"rank{rank}.json"
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_text(
            json.dumps({"rank": rank, "sha256": weights_digest(model), "seen": debug.seen})
        )
    if logger:
        logger.close()
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    D.shutdown()
    return summary

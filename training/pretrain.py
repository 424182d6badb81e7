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
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from sarmae_core.errors import InputError
from sarmae_core.models import SARMAE, create_model, save_checkpoint
from sarmae_core.models.mae import TeacherFeatureCache

from .config import PretrainRunConfig, to_plain
from .data import build_pretrain_dataset, collate_pretrain
from .optim import lr_at, param_groups
from .quicklook import save_quicklook
from .runtime import NonFiniteLossError, Runtime

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "loss_rec", "loss_align", "images_per_s", "seconds"]


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
        return ddp(images, optical, paired, optical_keys=batch.get("optical_keys"))


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
    plain = to_plain(cfg)
    rt = Runtime(cfg.run, plain, resume)
    rank, world, device, out_dir = rt.rank, rt.world, rt.device, rt.out_dir
    model = build_pretrain_model(cfg)
    window = model.config.img_size
    dataset = build_pretrain_dataset(cfg.data, window, model.config.data.units, cfg.run.seed)
    firsts = [int(o) for o in dataset.offsets[:-1]]
    probes = [(dataset[i], s) for i, s in zip(firsts, cfg.data.sources, strict=True)]
    probes = [(p["sar"], f"source {s.kind} {s.paths or s.sar}") for p, s in probes if p]
    check_value_range(model, [x for x, _ in probes], [w for _, w in probes])
    with_sarc = model.sarc is not None
    if with_sarc and cfg.run.teacher_cache_mb > 0:  # the frozen teacher's grids, once per crop
        model.sarc.cache = TeacherFeatureCache(cfg.run.teacher_cache_mb << 20)
    if dataset.has_optical and not with_sarc:
        log.warning(
            "some samples have optical pairs but the model has no SARC teacher "
            "(model.overrides.sarc.teacher): the alignment loss is off"
        )
    if with_sarc and not dataset.has_optical:
        log.warning("the model has a SARC teacher but no source has optical pairs")

    o = cfg.optim
    model.to(device).train()
    optimizer, peak = rt.optimizer(param_groups(model, o.weight_decay), o)
    step, epoch, position = 0, 0, 0
    state = rt.restore(model, optimizer)
    if state is not None:
        step, epoch, position = state.step, state.epoch, state.position
        log.info("resumed from %s at step %d (epoch %d)", state.path, step, epoch)
    ddp = rt.wrap(model)
    sampler, per_epoch = rt.sampler(len(dataset), o)
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
    logger = rt.logger(LOG_COLUMNS, step if resume is not None else None)
    use_amp = rt.amp
    log.info(
        "pretraining %s: %d steps, effective batch %d, peak lr %.2e, %d process(es) on %s, "
        "%d samples per epoch",
        model.config.preset,
        o.steps,
        rt.effective_batch(o),
        peak,
        world,
        device,
        len(dataset),
    )
    progress = rt.progress(o.steps, step)
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
                if rt.distributed:
                    raise InputError(f"a whole batch is unreadable on rank {rank} (epoch {epoch})")
                continue
            images = batch["sar"]
            sync = position % o.accum_steps == 0
            ctx = ddp.no_sync() if rt.distributed and not sync else contextlib.nullcontext()
            with ctx:
                out = train_step(ddp, batch, device, use_amp, with_sarc)
                if not rt.finite(out.loss):
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
            lr = lr_at(step, o.steps, o.warmup_steps, peak, o.min_lr)
            rt.step(model, optimizer, lr, o.clip_grad)
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
                rt.save_state(model, optimizer, step, epoch, position)
                if rt.main:
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
    rt.close()
    return summary

"""Fine-tuning: classification, segmentation and ship detection on a SARMAE encoder.

Same optimiser machinery as pretraining (AdamW, warmup + cosine, clipping, bf16 on GPU, NaN
stop, exact resume at epoch boundaries), with layer-wise lr decay over the ViT blocks. At the
end the model is evaluated on the test split and ``metrics.json`` written beside
``model.safetensors`` (the fine-tuned task model, class names in its header).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sarmae_core.errors import InputError
from sarmae_core.models.losses import detection_loss, segmentation_loss

from . import distributed as D
from .config import FinetuneRunConfig, to_plain
from .datasets import FORMATS, build_dataset
from .datasets.base import ConcatTaskDataset
from .evaluate import evaluate, headline, make_loader
from .logs import Progress, RunLogger
from .optim import layer_decay_groups, lr_at, peak_lr, set_lr
from .pretrain import NonFiniteLossError, check_value_range, seed_everything
from .sampler import ResumableSampler
from .state import capture_rng, check_same_model, find_resume_state, list_states, save_state
from .task_models import build_for_run, check_task, encoder_config, save_task_model

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "images_per_s", "seconds"]


def task_loss(model: Any, out: Any, batch: dict[str, Any], cfg: FinetuneRunConfig) -> torch.Tensor:
    """The task's training loss (see the config's ``loss`` section)."""
    lc = cfg.loss
    if cfg.task == "classification":
        target = batch["target"].to(out.device)
        return F.cross_entropy(out.float(), target, label_smoothing=lc.label_smoothing)
    if cfg.task == "segmentation":
        target = batch["target"].to(out.device)
        return segmentation_loss(out.float(), target, lc.class_weights, lc.dice_weight)
    out = {k: v.float() for k, v in out.items()}
    region = getattr(model, "centre_region", False)
    return detection_loss(
        out, batch["target"], model.stride, lc.size_weight, lc.offset_weight, region
    ).loss


def _in_chans(cfg: FinetuneRunConfig) -> int:
    if cfg.data.format not in FORMATS:
        build_dataset(cfg.data, cfg.data.train_split, "db", True)  # raises the naming error
    return len(cfg.data.bands or FORMATS[cfg.data.format].BANDS)


def run_finetune(cfg: FinetuneRunConfig, resume: str | None = None) -> dict[str, Any]:
    """Fine-tune and evaluate as configured; returns the metrics (also in ``metrics.json``)."""
    check_task(cfg.task)
    D.init_distributed()
    rank, world, local_rank = D.rank_world()
    device = D.device_for(local_rank)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    out_dir, o = Path(cfg.run.out_dir), cfg.optim
    ckpt_dir = out_dir / "checkpoints"
    if resume is None and list_states(ckpt_dir):
        raise FileExistsError(
            f"{out_dir} already holds checkpoints; pass --resume or set run.out_dir to a new folder"
        )
    seed_everything(cfg.run.seed)
    config = encoder_config(cfg, _in_chans(cfg))
    units = config.data.units
    train_ds = build_dataset(cfg.data, cfg.data.train_split, units, True, cfg.run.seed, cfg.task)
    if cfg.data.extra_train:
        extra = [
            build_dataset(e, e.train_split, units, True, cfg.run.seed, cfg.task)
            for e in cfg.data.extra_train
        ]
        for e, ds in zip(cfg.data.extra_train, extra, strict=True):
            log.info("extra training set %s %s: %d samples", e.format, e.path, len(ds))
        train_ds = ConcatTaskDataset([train_ds, *extra])
    test_ds = build_dataset(cfg.data, cfg.data.test_split, units, False, cfg.run.seed, cfg.task)
    if test_ds.class_names != train_ds.class_names:
        raise InputError(
            f"train and test splits have different classes: {train_ds.class_names} "
            f"vs {test_ds.class_names}"
        )
    log.info(
        "%s on %s: %d train / %d test samples, classes %s",
        cfg.task,
        cfg.data.format,
        len(train_ds),
        len(test_ds),
        train_ds.class_names,
    )
    model = build_for_run(cfg, config, train_ds.class_names).to(device)
    first = next((s for s in (train_ds[i] for i in range(min(4, len(train_ds)))) if s), None)
    if first is not None:
        check_value_range(model, [first["image"].to(device)], [f"data {cfg.data.format}"])
    model.train()
    eff_batch = o.batch_size * o.accum_steps * world
    peak = peak_lr(o.base_lr, o.lr, eff_batch)
    groups = layer_decay_groups(model, o.weight_decay, o.layer_decay, config.depth)
    optimizer = torch.optim.AdamW(groups, lr=peak, betas=tuple(o.betas))
    sampler = ResumableSampler(len(train_ds), rank, world, cfg.run.seed)
    per_epoch = sampler.per_rank // o.batch_size // o.accum_steps * o.accum_steps
    if per_epoch == 0:
        raise InputError(
            f"{len(train_ds)} training samples are fewer than one batch of "
            f"{o.batch_size * o.accum_steps}; lower optim.batch_size"
        )
    total = o.epochs * per_epoch // o.accum_steps
    plain = to_plain(cfg)
    epoch = 0
    if resume is not None:
        state = find_resume_state(ckpt_dir, None if resume == "latest" else Path(resume))
        check_same_model(state, model.config)
        state.restore(model, optimizer, rank)
        epoch = state.epoch + 1  # fine-tuning checkpoints are taken at epoch ends
        log.info("resumed from %s (epoch %d done)", state.path, state.epoch)
    ddp: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            model,
            device_ids=[local_rank] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.linear_probe,
        )
    loader = make_loader(
        model,
        train_ds,
        o.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.run.num_workers,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    logger = None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(plain, indent=2))
        logger = RunLogger(
            out_dir,
            LOG_COLUMNS,
            cfg.run.tensorboard,
            resume_step=epoch * per_epoch // o.accum_steps if resume else None,
        )
    amp = cfg.run.amp and device.type == "cuda"
    step = epoch * per_epoch // o.accum_steps
    progress = Progress(total, step) if rank == 0 and log.isEnabledFor(logging.INFO) else None
    log.info(
        "fine-tuning: %d epochs x %d steps, effective batch %d, peak lr %.2e, layer decay %.2f, %s",
        o.epochs,
        per_epoch // o.accum_steps,
        eff_batch,
        peak,
        o.layer_decay,
        device,
    )
    t0, seen, first_epoch = time.perf_counter(), 0, epoch
    for epoch in range(first_epoch, o.epochs):
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        for position, batch in enumerate(loader, start=1):
            if position > per_epoch:
                break
            if batch is None:
                continue
            x = batch["image"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = ddp(x)
            loss = task_loss(model, out, batch, cfg)
            if not D.all_finite(loss):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {step + 1} (epoch {epoch}, batch "
                    f"{position}); samples {', '.join(batch['id'][:4])}: lower optim.lr or "
                    "check these images"
                )
            (loss / o.accum_steps).backward()
            seen += x.shape[0] * world
            if position % o.accum_steps:
                continue
            set_lr(optimizer, lr_at(step, total, o.warmup_steps, peak, o.min_lr))
            if o.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            wall = time.perf_counter() - t0
            if logger and (step % cfg.run.log_every == 0 or step == total):
                lr = max(g["lr"] for g in optimizer.param_groups)
                logger.write(
                    {
                        "step": step,
                        "epoch": epoch,
                        "lr": lr,
                        "loss": loss.item(),
                        "images_per_s": seen / wall,
                        "seconds": wall,
                    }
                )
            if progress:
                progress.update(step, loss=loss.item())
        rngs = D.gather_objects(capture_rng())
        if rank == 0:
            save_state(
                ckpt_dir,
                model,
                optimizer,
                step=step,
                epoch=epoch,
                position=per_epoch,
                rng_per_rank=rngs,
                run_config=plain,
                keep_last=cfg.run.keep_last,
            )
            save_task_model(model, out_dir / "model.safetensors", {"epoch": epoch, "step": step})
    result: dict[str, Any] = {}
    if rank == 0:
        records: list[dict[str, Any]] = []
        metrics = evaluate(model, test_ds, cfg.eval, device, amp, records)
        if records:  # boxes with scores (detection) or per-image predictions (classification)
            name = "detections.json" if cfg.task == "detection" else "predictions.json"
            (out_dir / name).write_text(json.dumps(records))
        metrics.update(
            train_samples=len(train_ds),
            train_skipped_unreadable=len(train_ds.skipped),
            init=cfg.model.init,
            preset=model.config.preset,
            steps=step,
            seconds=time.perf_counter() - t0,
        )
        save_task_model(
            model,
            out_dir / "model.safetensors",
            {
                "epoch": o.epochs - 1,
                "step": step,
                "metrics": _brief(metrics),
                "input_units": to_plain(cfg.data)["units"],
            },
        )
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        log.info("%s: %s", cfg.task, headline(metrics))
        result = metrics
        if logger:
            logger.close()
    D.shutdown()
    return result


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("top1", "miou", "water_iou", "water_f1", "AP", "AP50", "split")
    return {k: metrics[k] for k in keys if k in metrics}

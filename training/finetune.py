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
from typing import Any

import torch
import torch.nn.functional as F

from sarmae_core.errors import InputError
from sarmae_core.models.losses import detection_loss, segmentation_loss

from .config import FinetuneRunConfig, to_plain
from .datasets import FORMATS, build_dataset
from .datasets.base import ConcatTaskDataset
from .evaluate import evaluate, headline, make_loader
from .optim import layer_decay_groups, lr_at
from .pretrain import check_value_range
from .runtime import NonFiniteLossError, Runtime
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
    plain = to_plain(cfg)
    rt = Runtime(cfg.run, plain, resume)
    world, device, out_dir, o = rt.world, rt.device, rt.out_dir, cfg.optim
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
    test_ds = None
    if cfg.data.test_split is not None:  # None: a final model on all the data, scored elsewhere
        test_ds = build_dataset(cfg.data, cfg.data.test_split, units, False, cfg.run.seed, cfg.task)
    if test_ds is not None and test_ds.class_names != train_ds.class_names:
        raise InputError(
            f"train and test splits have different classes: {train_ds.class_names} "
            f"vs {test_ds.class_names}"
        )
    log.info(
        "%s on %s: %d train / %d test samples, classes %s",
        cfg.task,
        cfg.data.format,
        len(train_ds),
        len(test_ds) if test_ds is not None else 0,
        train_ds.class_names,
    )
    model = build_for_run(cfg, config, train_ds.class_names).to(device)
    first = next((s for s in (train_ds[i] for i in range(min(4, len(train_ds)))) if s), None)
    if first is not None:
        check_value_range(model, [first["image"].to(device)], [f"data {cfg.data.format}"])
    model.train()
    groups = layer_decay_groups(model, o.weight_decay, o.layer_decay, config.depth)
    optimizer, peak = rt.optimizer(groups, o)
    sampler, per_epoch = rt.sampler(len(train_ds), o)
    total = o.epochs * per_epoch // o.accum_steps
    epoch = 0
    state = rt.restore(model, optimizer)
    if state is not None:
        epoch = state.epoch + 1  # fine-tuning checkpoints are taken at epoch ends
        log.info("resumed from %s (epoch %d done)", state.path, state.epoch)
    ddp = rt.wrap(model, find_unused=cfg.model.linear_probe)
    loader = make_loader(
        model,
        train_ds,
        o.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.run.num_workers,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    logger = rt.logger(LOG_COLUMNS, epoch * per_epoch // o.accum_steps if resume else None)
    amp = rt.amp
    step = epoch * per_epoch // o.accum_steps
    progress = rt.progress(total, step)
    log.info(
        "fine-tuning: %d epochs x %d steps, effective batch %d, peak lr %.2e, layer decay %.2f, %s",
        o.epochs,
        per_epoch // o.accum_steps,
        rt.effective_batch(o),
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
            if not rt.finite(loss):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {step + 1} (epoch {epoch}, batch "
                    f"{position}); samples {', '.join(batch['id'][:4])}: lower optim.lr or "
                    "check these images"
                )
            (loss / o.accum_steps).backward()
            seen += x.shape[0] * world
            if position % o.accum_steps:
                continue
            rt.step(
                model, optimizer, lr_at(step, total, o.warmup_steps, peak, o.min_lr), o.clip_grad
            )
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
        rt.save_state(model, optimizer, step, epoch, per_epoch)
        if rt.main:
            save_task_model(model, out_dir / "model.safetensors", {"epoch": epoch, "step": step})
    result: dict[str, Any] = {}
    if rt.main:
        records: list[dict[str, Any]] = []
        if test_ds is not None:
            metrics = evaluate(model, test_ds, cfg.eval, device, amp, records)
        else:
            metrics = {"task": cfg.task, "split": None, "class_names": train_ds.class_names}
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
    rt.close()
    return result


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("top1", "miou", "water_iou", "water_f1", "AP", "AP50", "split")
    return {k: metrics[k] for k in keys if k in metrics}

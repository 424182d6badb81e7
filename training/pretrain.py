"""SARMAE pretraining loop: AdamW, warmup + cosine, clipping, accumulation, AMP, DDP.

Run assembly (``run_pretraining``) and the per-step work (``train_step``) stay apart, as in MAE.
Distributed runs go through torchrun (one process per device, PyTorch DDP); only rank 0 writes.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from sarmae_core.errors import SarmaeError
from sarmae_core.models import SARMAE, save_checkpoint

log = logging.getLogger(__name__)


class NonFiniteLossError(SarmaeError, FloatingPointError):
    """Training stopped on a NaN or infinite loss."""


@dataclass
class PretrainConfig:
    """Optimisation settings (defaults: the authors' recipe, scaled by effective batch)."""

    steps: int = 1000
    batch_size: int = 32
    accum_steps: int = 1
    base_lr: float = 1.5e-4  # lr = base_lr * effective batch / 256 (MAE)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    min_lr: float = 0.0
    clip_grad: float = 1.0
    save_every: int = 500
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # bf16 autocast on CUDA only
    out_dir: Path = field(default_factory=lambda: Path("runs/pretrain"))


def lr_at(step: int, cfg: PretrainConfig, peak: float) -> float:
    """Linear warmup to ``peak``, then half-cosine to ``min_lr`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, tokens and position embeddings (1-D or token params)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(("cls_token", "mask_token", "pos_embed")):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def init_distributed() -> bool:
    """Join the process group when started by torchrun (NCCL on GPU, gloo on CPU)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


def save_quicklook(model: SARMAE, batch: torch.Tensor, path: Path) -> None:
    """PNG grid, one row per image: input, speckled input, masked input, reconstruction."""
    from PIL import Image

    model.eval()  # eval: the encoder sees the clean image, the reconstruction is comparable
    with torch.no_grad():
        out = model(batch[:4], generator=torch.Generator().manual_seed(0))
        noisy, _ = model.sare(batch[:4], torch.Generator().manual_seed(0))  # what SARE feeds
    model.train()
    grid = (batch.shape[-2] // model.config.patch_size, batch.shape[-1] // model.config.patch_size)
    target = model.normalize(batch[:4])
    recon = model.unpatchify(out.pred, grid)
    pixel_mask = model.unpatchify(
        out.mask.unsqueeze(-1).expand(-1, -1, out.pred.shape[-1]), grid
    ).bool()
    masked = target.masked_fill(pixel_mask, float("nan"))
    # reconstruction keeps the visible patches from the input, as in MAE figures
    pasted = torch.where(pixel_mask, recon, target)
    cols = [target, model.normalize(noisy), masked, pasted]
    rows = []
    for i in range(target.shape[0]):
        tiles = [c[i, 0].float().numpy() for c in cols]
        rows.append(np.concatenate([np.pad(t, 2, constant_values=np.nan) for t in tiles], 1))
    img = np.concatenate(rows, 0)
    # normalised units: about -2.5..2.5 std covers a SAR scene; NaN (masked) drawn grey
    u8 = np.clip((img + 2.5) / 5.0 * 255, 0, 255)
    u8 = np.where(np.isnan(img), 110, u8).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(u8).save(path)


def run_pretraining(model: SARMAE, dataset, cfg: PretrainConfig) -> dict:
    """Pretrain ``model`` on ``dataset`` (tensors in the model's units); returns a summary."""
    distributed = init_distributed()
    rank, world, local_rank = _dist_info()
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed + rank)
    model.to(device).train()
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None) if distributed else model  # fmt: skip
    eff_batch = cfg.batch_size * cfg.accum_steps * world
    peak_lr = cfg.base_lr * eff_batch / 256
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=peak_lr, betas=cfg.betas)
    sampler = DistributedSampler(dataset, shuffle=False) if distributed else None
    loader = DataLoader(dataset, cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=True)  # fmt: skip
    out_dir = Path(cfg.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        log_file = (out_dir / "log.csv").open("w", newline="")
        writer = csv.writer(log_file)
        writer.writerow(["step", "epoch", "lr", "loss", "loss_rec", "loss_align", "images_per_s"])
    use_amp = cfg.amp and device.type == "cuda"
    step, epoch, t0, seen = 0, 0, time.perf_counter(), 0
    log.info("pretraining %s: %d steps, effective batch %d, peak lr %.2e, %d process(es) on %s",
             model.config.preset, cfg.steps, eff_batch, peak_lr, world, device)  # fmt: skip
    last = {}
    while step < cfg.steps:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            images = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = ddp(images)
            loss = out.loss / cfg.accum_steps
            if not torch.isfinite(out.loss):
                raise NonFiniteLossError(
                    f"loss became {out.loss.item()} at step {step} (epoch {epoch}, batch {i}); "
                    "lower the learning rate or check the data for extreme values"
                )
            loss.backward()
            seen += images.shape[0] * world
            if (i + 1) % cfg.accum_steps:
                continue
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg, peak_lr)
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            last = {"loss": out.loss.item(), "loss_rec": out.loss_rec.item(),
                    "loss_align": out.loss_align.item()}  # fmt: skip
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                ips = seen / (time.perf_counter() - t0)
                writer.writerow([step, epoch, opt.param_groups[0]["lr"], last["loss"],
                                 last["loss_rec"], last["loss_align"], f"{ips:.2f}"])  # fmt: skip
                log_file.flush()
                log.info("step %d/%d loss %.4f (%.1f img/s)", step, cfg.steps, last["loss"], ips)
            if rank == 0 and (step % cfg.save_every == 0 or step == cfg.steps):
                save_checkpoint(model, out_dir / "checkpoint.safetensors",
                                extra={"step": step, "epoch": epoch}, overwrite=True)  # fmt: skip
            if step >= cfg.steps:
                break
        if rank == 0:
            save_quicklook(model, images.detach().float().cpu(), out_dir / f"recon_epoch{epoch:03d}.png")
        epoch += 1
    if rank == 0:
        log_file.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    wall = time.perf_counter() - t0
    return {"steps": step, "epochs": epoch, "seconds": wall, "images_per_s": seen / wall, **last}

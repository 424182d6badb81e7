"""The per-epoch picture of pretraining: input, speckled input, masked input, reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sarmae_core.models import SARMAE


def save_quicklook(model: SARMAE, batch: torch.Tensor, path: Path, rows: int = 4) -> None:
    """PNG grid, one row per image: input | speckled input | masked input | reconstruction.

    Uses its own seeded generators, so drawing the picture never moves the training RNG (a
    resumed run stays identical to an uninterrupted one).

    Args:
        model: the SARMAE being trained (any device).
        batch: [N, C, H, W] images in the model's units; the first ``rows`` are drawn,
            first channel only.
        path: PNG file to write.
    """
    from PIL import Image

    was_training = model.training
    device = next(model.parameters()).device
    images = batch[:rows].to(device)
    model.eval()  # eval: the encoder sees the clean image, the reconstruction is comparable
    try:
        with torch.no_grad():
            out = model(images, generator=torch.Generator().manual_seed(0))
            # a CPU generator works for CUDA tensors too (speckle forks the RNG around it)
            noisy, _ = model.sare(images, torch.Generator().manual_seed(0))
    finally:
        model.train(was_training)
    p = model.config.patch_size
    grid = (images.shape[-2] // p, images.shape[-1] // p)
    target = model.normalize(images).float()
    recon = model.unpatchify(out.pred.float(), grid)
    pixel_mask = model.unpatchify(
        out.mask.unsqueeze(-1).expand(-1, -1, out.pred.shape[-1]).float(), grid
    ).bool()
    masked = target.masked_fill(pixel_mask, float("nan"))
    pasted = torch.where(pixel_mask, recon, target)  # visible patches from the input, as in MAE
    cols = [target, model.normalize(noisy).float(), masked, pasted]
    lines = []
    for i in range(target.shape[0]):
        tiles = [c[i, 0].cpu().numpy() for c in cols]
        lines.append(np.concatenate([np.pad(t, 2, constant_values=np.nan) for t in tiles], 1))
    img = np.concatenate(lines, 0)
    # normalised units: about -2.5..2.5 std covers a SAR scene; NaN (masked, borders) grey
    u8 = np.clip((img + 2.5) / 5.0 * 255, 0, 255)
    u8 = np.where(np.isnan(img), 110, u8).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(u8).save(path)

"""SARMAE: masked autoencoder with SARE speckle on the encoder input and SARC optical alignment.

Reads top to bottom like the paper: normalise -> speckle the encoder input (SARE) -> random
masking and encoding -> decoding -> MSE on masked patches against the clean image -> cosine
alignment of visible tokens to a frozen optical teacher on paired samples (SARC).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from ..errors import InputError
from ..speckle import SpeckleAugment
from .normalization import InputNormalization
from .registry import ModelConfig, make_config
from .vit import SarViTEncoder, _init_linear_and_norm, sincos_pos_embed


@dataclass
class MAEOutput:
    """What one pretraining forward pass returns."""

    loss: torch.Tensor  # total: rec + lambda * align
    loss_rec: torch.Tensor
    loss_align: torch.Tensor
    pred: torch.Tensor  # [N, L, p*p*C] reconstructed patches (normalised units)
    mask: torch.Tensor  # [N, L], 1 = masked
    looks: torch.Tensor  # [N] synthetic looks of the SARE speckle (inf = clean)
    encoder_input: torch.Tensor  # [N, C, H, W] normalised, speckled input the encoder saw


class TeacherFeatureCache:
    """The frozen teacher's patch grids, computed once per optical sample and reused.

    The teacher never trains and a pretraining set's optical images are fixed, so the grid of a
    sample (its file, crop box, quarter turns and flip: the key the data pipeline gives) is the
    same every time it comes back; recomputing it was most of a SARC step. Misses are computed
    by the teacher exactly as without the cache (eval-mode BatchNorm: each sample on its own),
    kept on the CPU, least recently used first out beyond ``max_bytes``. A cache serves one
    teacher: another one clears it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._store: OrderedDict[tuple[str, tuple[int, int]], torch.Tensor] = OrderedDict()
        self._teacher: int | None = None
        self.bytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def grids(
        self,
        teacher: nn.Module,
        optical: torch.Tensor,
        keys: Sequence[str],
        grid_hw: tuple[int, int],
    ) -> torch.Tensor:
        """[P, Dt, gh, gw] grids of ``optical`` [P, 3, H, W], one key per image."""
        if self._teacher != id(teacher):
            self._store.clear()
            self._teacher, self.bytes = id(teacher), 0
        wanted = [(str(k), (int(grid_hw[0]), int(grid_hw[1]))) for k in keys]
        found = {i: self._store.get(w) for i, w in enumerate(wanted)}
        missing = [i for i, g in found.items() if g is None]
        if missing:
            fresh = teacher.patch_grid(optical[missing], grid_hw).detach()
            for i, grid in zip(missing, fresh, strict=True):
                found[i] = grid
                self._put(wanted[i], grid.to("cpu", copy=True))
        for i, w in enumerate(wanted):
            if i not in missing and w in self._store:
                self._store.move_to_end(w)
        self.hits += len(wanted) - len(missing)
        self.misses += len(missing)
        return torch.stack([found[i].to(optical.device) for i in range(len(wanted))])

    def _put(self, key: tuple[str, tuple[int, int]], grid: torch.Tensor) -> None:
        size = grid.numel() * grid.element_size()
        if size > self.max_bytes:
            return
        self._store[key] = grid
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


class SarcAlignment(nn.Module):
    """Projection of SAR tokens to the teacher width and the patch-wise cosine loss.

    ``cache``: a :class:`TeacherFeatureCache` the training loop may set; used when the batch
    names its optical samples (``keys``), else the teacher runs on the fly.
    """

    def __init__(self, sar_dim: int, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher
        self.cache: TeacherFeatureCache | None = None
        t_dim = teacher.out_dim
        # Linear, ReLU, Linear to the teacher width, LayerNorm (the SARMAE paper's SARC head).
        self.proj = nn.Sequential(
            nn.Linear(sar_dim, sar_dim), nn.ReLU(), nn.Linear(sar_dim, t_dim), nn.LayerNorm(t_dim)
        )

    def forward(
        self,
        visible: torch.Tensor,
        ids_keep: torch.Tensor,
        grid_hw: tuple[int, int],
        optical: torch.Tensor,
        paired: torch.Tensor,
        keys: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """Mean over paired samples of mean over visible patches of 1 - cos(proj(sar), optical).

        visible [N, K, D] (CLS dropped), ids_keep [N, K], optical [N, 3, H', W'], paired [N] bool,
        keys: [N] optical sample keys (None where unknown) for the feature cache.
        """
        if not bool(paired.any()):
            # Keeps the projection in the graph (DDP wants every parameter used each step).
            return sum(p.sum() for p in self.proj.parameters()) * 0.0
        idx = paired.nonzero(as_tuple=True)[0]
        named = [keys[i] for i in idx.tolist()] if keys is not None else []
        if self.cache is not None and named and all(k is not None for k in named):
            grid = self.cache.grids(self.teacher, optical[idx], named, grid_hw)  # type: ignore[arg-type]
        else:
            grid = self.teacher.patch_grid(optical[idx], grid_hw)  # [P, Dt, gh, gw]
        target = grid.flatten(2).transpose(1, 2)  # [P, L, Dt]
        keep = ids_keep[idx]
        target = torch.gather(target, 1, keep.unsqueeze(-1).expand(-1, -1, target.shape[-1]))
        sar = self.proj(visible[idx])  # [P, K, Dt]
        cos = F.cosine_similarity(sar, target.to(sar.dtype), dim=-1, eps=1e-6)  # [P, K]
        return (1.0 - cos).mean()


class SARMAE(nn.Module):
    """The SARMAE pretraining model.

    Input images are in the physical units declared by ``config.data`` (dB, intensity or
    amplitude); the model normalises them itself, so speckle is applied in the right domain.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = SarViTEncoder.from_config(c)
        self.input_norm = InputNormalization(c.data.normalization)
        self.sare = SpeckleAugment(c.speckle, c.data.units)

        # Decoder (MAE): light transformer over visible tokens + mask tokens.
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_embed_dim, c.decoder_num_heads, c.mlp_ratio, qkv_bias=True,
                  norm_layer=norm_layer)
            for _ in range(c.decoder_depth)
        )  # fmt: skip
        self.decoder_norm = norm_layer(c.decoder_embed_dim)
        # Fixed sin-cos positions of the pretraining grid, made once and moved with the module
        # (MAE's decoder_pos_embed); not persistent, so checkpoints do not carry a constant.
        grid = self.encoder.grid_size
        pos = torch.from_numpy(sincos_pos_embed(c.decoder_embed_dim, grid)).unsqueeze(0)
        self.register_buffer("decoder_pos_embed", pos.float(), persistent=False)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2 * c.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(_init_linear_and_norm)

        self.sarc: SarcAlignment | None = None
        if c.sarc.teacher is not None:
            from .teachers import build_teacher

            self.sarc = SarcAlignment(c.embed_dim, build_teacher(c.sarc.teacher))

    # ------------------------------------------------------------------ helpers
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Physical units (``config.data.units``) -> the encoder's input scale."""
        return self.input_norm(x)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, L, p*p*C] (row-major patches, channels last within a patch)."""
        p = self.config.patch_size
        n, c, h, w = imgs.shape
        x = imgs.reshape(n, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """[N, L, p*p*C] -> [N, C, H, W]."""
        p, c = self.config.patch_size, self.config.in_chans
        gh, gw = grid_hw
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)

    def _decoder_pos(self, grid_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
        """[1, L, Dd] decoder positions: the buffer, or made for another grid size."""
        if tuple(grid_hw) == tuple(self.encoder.grid_size):
            return self.decoder_pos_embed
        pos = sincos_pos_embed(self.config.decoder_embed_dim, grid_hw)
        return torch.from_numpy(pos).to(device).unsqueeze(0)

    # ------------------------------------------------------------------ forward
    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, grid_hw: tuple[int, int]
    ) -> torch.Tensor:
        x = self.decoder_embed(latent)  # [N, 1+K, Dd]
        n, length = ids_restore.shape
        masks = self.mask_token.expand(n, length + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], masks], dim=1)  # [N, L, Dd], shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x_ = x_ + self._decoder_pos(grid_hw, x.device).to(x_.dtype)
        x = torch.cat([x[:, :1], x_], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # [N, L, p*p*C]

    def forward_loss(
        self, target_img: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """MSE over masked patches only, against the clean (normalised) image."""
        target = self.patchify(target_img)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # [N, L]
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self,
        images: torch.Tensor,
        optical: torch.Tensor | None = None,
        paired: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        optical_keys: Sequence[str | None] | None = None,
    ) -> MAEOutput:
        """One pretraining step's losses.

        Args:
            images: [N, C, H, W] SAR images in ``config.data.units``.
            optical: [N, 3, H', W'] co-registered optical RGB in [0, 1] (any content where
                ``paired`` is False), or None.
            paired: [N] bool, which samples have a real optical pair.
            mask_ratio: overrides ``config.mask_ratio``.
            generator: RNG for masking and speckle (reproducible tests).
            optical_keys: [N] what each optical image is (file, crop, flips; None: unknown),
                for the teacher-feature cache (:class:`TeacherFeatureCache`).
        """
        self.encoder.check_input(images)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        target = self.normalize(images)
        if self.training:
            noisy, looks = self.sare(images, generator)
        else:
            noisy, looks = images, torch.full((images.shape[0],), float("inf"))
        enc_in = self.normalize(noisy)
        latent, mask, ids_restore, ids_keep = self.encoder.forward_encoder(enc_in, ratio, generator)
        grid = (
            images.shape[-2] // self.config.patch_size,
            images.shape[-1] // self.config.patch_size,
        )
        pred = self.forward_decoder(latent, ids_restore, grid)
        loss_rec = self.forward_loss(target, pred, mask)

        loss_align = loss_rec.new_zeros(())
        if self.sarc is not None and optical is not None:
            if paired is None:
                paired = torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
            if optical.shape[0] != images.shape[0] or optical.ndim != 4 or optical.shape[1] != 3:
                raise InputError(
                    f"optical images must be [N, 3, H, W] with N={images.shape[0]} like the SAR "
                    f"batch, got {tuple(optical.shape)}"
                )
            loss_align = self.sarc(
                latent[:, 1:], ids_keep, grid, optical, paired.bool(), optical_keys
            )
        loss = loss_rec + self.config.sarc.weight * loss_align
        return MAEOutput(loss, loss_rec, loss_align, pred, mask, looks, enc_in)


def create_model(preset: str, in_chans: int | None = None, **overrides) -> SARMAE:
    """Build a SARMAE model by preset name, e.g. ``create_model("sarmae_vit_base", in_chans=2)``."""
    return SARMAE(make_config(preset, in_chans=in_chans, **overrides))

"""The SAR ViT encoder: timm's patch embedding and transformer blocks with SAR-sized inputs.

The encoder is what every downstream use sees: heads, export and inference go through
``forward_features`` and ``forward_intermediates`` only. Masking lives here too, so the MAE and
the SARC alignment see the very same visible tokens.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from timm.layers import PatchEmbed, resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from ..errors import InputError

if TYPE_CHECKING:
    from .registry import ModelConfig


def sincos_pos_embed(embed_dim: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """2-D sin-cos position embedding [gh*gw, D] (as in MAE: half the width per axis)."""
    if embed_dim % 4:
        raise ValueError(
            f"sin-cos position embedding needs a width divisible by 4, got {embed_dim}"
        )
    gh, gw = grid_hw
    ys, xs = np.meshgrid(
        np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij"
    )
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4.0))

    def axis(pos: np.ndarray) -> np.ndarray:
        out = np.outer(pos.reshape(-1), omega)  # [L, D/4]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)  # [L, D/2]

    # MAE's convention: the first half of the width encodes w (columns), the second h (rows).
    return np.concatenate([axis(xs), axis(ys)], axis=1).astype(np.float32)


class SarViTEncoder(nn.Module):
    """ViT encoder with a CLS token, fixed 2-D sin-cos positions and MAE-style random masking.

    Args:
        img_size: image side the position embedding is laid out for; other sizes that are a
            multiple of ``patch_size`` work through resampling of the embedding.
        patch_size: patch side in pixels.
        in_chans: SAR channels (1 = VV, 2 = VV+VH, ...).
        embed_dim, depth, num_heads, mlp_ratio: transformer size.
        drop_path_rate: stochastic depth, increasing linearly with depth (fine-tuning).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 1,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        # strict_img_size off: any size that is a multiple of the patch goes through.
        self.patch_embed = PatchEmbed(
            img_size, patch_size, in_chans, embed_dim, strict_img_size=False
        )
        self.grid_size = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Fixed during pretraining, as in MAE; fine-tuning may set requires_grad to learn it.
        self.pos_embed = nn.Parameter(
            torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim),
            requires_grad=False,
        )
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer, drop_path=dp
            )
            for dp in dpr
        )
        self.norm = norm_layer(embed_dim)
        self._init_weights()

    @classmethod
    def from_config(cls, c: ModelConfig) -> SarViTEncoder:
        """The encoder a :class:`ModelConfig` describes."""
        return cls(
            c.img_size, c.patch_size, c.in_chans, c.embed_dim, c.depth, c.num_heads,
            c.mlp_ratio, c.drop_path_rate,
        )  # fmt: skip

    def _init_weights(self) -> None:
        pos = sincos_pos_embed(self.embed_dim, self.grid_size)
        self.pos_embed.data[0, 1:].copy_(torch.from_numpy(pos))
        # Patch embedding initialised like a linear layer (MAE), not like a conv.
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(_init_linear_and_norm)
        _init_linear_and_norm(self.norm)

    # ------------------------------------------------------------------ input and positions
    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputError` for a tensor the encoder cannot take."""
        if x.ndim != 4:
            raise InputError(f"expected images shaped [N, C, H, W], got {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise InputError(
                f"the model takes {self.in_chans} SAR channel(s) but the input has {x.shape[1]}; "
                "select the bands the model was trained on (see its polarisations)"
            )
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size or h == 0 or w == 0:
            raise InputError(
                f"image size {h}x{w} is not a multiple of the {self.patch_size}px patch; "
                f"crop or pad to e.g. {max(1, h // self.patch_size) * self.patch_size}x"
                f"{max(1, w // self.patch_size) * self.patch_size}"
            )
        # Tracing/export and meta tensors have no values to look at.
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing and x.device.type != "meta":
            if not bool(torch.isfinite(x).all()):
                raise InputError(
                    "input holds NaN or infinite values; mask nodata before the model "
                    "(the inference pipeline does this) or fill them"
                )

    def pos_embed_for(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """[1, 1 + gh*gw, D] position embedding for a patch grid (resampled if needed)."""
        if tuple(grid_hw) == tuple(self.grid_size):
            return self.pos_embed
        return resample_abs_pos_embed(
            self.pos_embed,
            new_size=list(grid_hw),
            old_size=list(self.grid_size),
            num_prefix_tokens=1,
        )

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch tokens with positions added, no CLS: [N, L, D] and the grid (gh, gw)."""
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        tokens = self.patch_embed(x)  # [N, L, D]
        return tokens + self.pos_embed_for(grid)[:, 1:], grid

    def prepend_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token + self.pos_embed[:, :1]
        return torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)

    # ------------------------------------------------------------------ masking (MAE)
    @staticmethod
    def random_masking(
        tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random subset of patches per sample.

        Returns:
            visible tokens [N, K, D], mask [N, L] (1 = masked), ids_restore [N, L],
            ids_keep [N, K] (grid index of each visible token).
        """
        n, length, d = tokens.shape
        len_keep = round(length * (1.0 - mask_ratio))
        if not 0 < len_keep <= length:
            raise InputError(
                f"mask ratio {mask_ratio} leaves {len_keep} of {length} patches visible; "
                "use a ratio that keeps at least one patch"
            )
        noise = torch.rand(n, length, generator=generator).to(tokens.device)  # [N, L]
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]  # [N, K]
        visible = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(n, length, device=tokens.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # back to grid order
        return visible, mask, ids_restore, ids_keep

    # ------------------------------------------------------------------ forward paths
    def forward_encoder(
        self, x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked encoding for pretraining: (latent [N, 1+K, D], mask, ids_restore, ids_keep)."""
        self.check_input(x)
        tokens, _ = self.embed(x)
        visible, mask, ids_restore, ids_keep = self.random_masking(tokens, mask_ratio, generator)
        h = self.prepend_cls(visible)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h), mask, ids_restore, ids_keep

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final norm: [N, 1 + L, D] (CLS first)."""
        self.check_input(x)
        tokens, _ = self.embed(x)
        h = self.prepend_cls(tokens)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def block_maps(
        self, x: torch.Tensor, indices: list[int] | tuple[int, ...], norm: bool = False
    ) -> list[torch.Tensor]:
        """Patch-token maps after the given blocks, each [N, D, gh, gw] (for dense heads).

        Negative indices count from the last block, as in timm. Not timm's
        ``forward_intermediates`` (which returns the final tokens too, with other options):
        only the maps the UPerNet-style heads read.
        """
        self.check_input(x)
        depth = len(self.blocks)
        wanted = sorted({i % depth for i in indices})
        if any(not -depth <= i < depth for i in indices):
            raise InputError(f"block indices {list(indices)} out of range for depth {depth}")
        tokens, (gh, gw) = self.embed(x)
        h = self.prepend_cls(tokens)
        out = {}
        for i, blk in enumerate(self.blocks[: wanted[-1] + 1]):
            h = blk(h)
            if i in wanted:
                feat = self.norm(h) if norm else h
                out[i] = feat[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        return [out[i % depth] for i in indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _init_linear_and_norm(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


__all__ = ["SarViTEncoder", "sincos_pos_embed"]

"""Input normalisation shared by the pretraining and task models (part of every ONNX graph)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import Normalization


class InputNormalization(nn.Module):
    """Physical units -> the encoder's input scale, as ``config.data.normalization`` says.

    ``fixed``: ``(x - mean) / std`` per channel with the configured statistics.
    ``per_tile``: each image and channel standardised by its own mean and std. An affine change
    of the input (a dB offset from calibration, an 8-bit stretch of dB as in ETCI or OMBRIA
    chips) then leaves the model's input unchanged, so one model reads chips and calibrated
    scenes alike; the price is that a tile's absolute level is lost.
    """

    #: Smallest std used in per-tile mode: a constant tile maps to zeros, not to inf.
    EPS = 1e-3

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.mode = norm.mode
        # Not persistent: the config is the one source of these values.
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm.std).view(1, -1, 1, 1), persistent=False)

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "per_tile":
            var, mean = torch.var_mean(x, dim=(-2, -1), keepdim=True)
            return (x - mean) / var.sqrt().clamp_min(self.EPS)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mode={self.mode}, channels={self.channels}"

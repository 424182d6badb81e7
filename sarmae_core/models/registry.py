"""Model presets by name, and the configuration that fully rebuilds a model.

Presets are small functions of data, as in timm: ``create_model("sarmae_vit_small", in_chans=2)``.
``sarmae_test`` is a very small model for tests and smoke runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import Normalization, SarDataConfig, from_dict
from ..errors import ConfigError
from ..speckle import SpeckleConfig

#: Architecture presets. Decoder sizes for ViT-B/L follow the paper (8 blocks, 512 wide, 16 heads);
#: the smaller presets get a lighter decoder so they pretrain on a laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "sarmae_test": dict(
        img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
    ),
    "sarmae_vit_tiny": dict(
        img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3,
        decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8,
    ),
    "sarmae_vit_small": dict(
        img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6,
        decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8,
    ),
    "sarmae_vit_base": dict(
        img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
    "sarmae_vit_large": dict(
        img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16,
        decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
    ),
}  # fmt: skip

#: Default band names and dB normalisation by channel count (Sentinel-1 sigma0 statistics).
_DEFAULT_BANDS = {
    1: (["VV"], [-12.0], [5.0]),
    2: (["VV", "VH"], [-12.0, -19.0], [5.0, 5.0]),
    3: (["VV", "VH", "VV-VH"], [-12.0, -19.0, 7.0], [5.0, 5.0, 3.0]),
}


@dataclass
class SarcConfig:
    """SARC optical alignment.

    Attributes:
        weight: lambda in L = L_rec + lambda * L_align (paper digest 0.1; authors' script 0.8).
        teacher: teacher spec for :func:`sarmae_core.models.teachers.build_teacher`, or None
            for a model without SARC.
    """

    weight: float = 0.1
    teacher: dict[str, Any] | None = None


@dataclass
class ModelConfig:
    """Everything needed to rebuild a SARMAE model; stored as JSON in every checkpoint."""

    preset: str = "sarmae_test"
    img_size: int = 64
    patch_size: int = 16
    embed_dim: int = 32
    depth: int = 2
    num_heads: int = 2
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 32
    decoder_depth: int = 1
    decoder_num_heads: int = 2
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    drop_path_rate: float = 0.0
    data: SarDataConfig = field(default_factory=SarDataConfig)
    speckle: SpeckleConfig = field(default_factory=SpeckleConfig)
    sarc: SarcConfig = field(default_factory=SarcConfig)

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            data = dict(self.data)
            if isinstance(data.get("normalization"), dict):
                data["normalization"] = from_dict(Normalization, data["normalization"])
            self.data = from_dict(SarDataConfig, data)
        if isinstance(self.speckle, dict):
            self.speckle = from_dict(SpeckleConfig, self.speckle)
        if isinstance(self.sarc, dict):
            self.sarc = from_dict(SarcConfig, self.sarc)
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.embed_dim % self.num_heads or self.decoder_embed_dim % self.decoder_num_heads:
            raise ConfigError("embedding widths must be divisible by their number of heads")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @property
    def in_chans(self) -> int:
        return self.data.in_chans

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON data (infinite looks become None)."""
        data = dataclasses.asdict(self)
        if math.isinf(data["speckle"]["max_looks"]):
            data["speckle"]["max_looks"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return from_dict(cls, data)


def list_presets() -> list[str]:
    """Preset names, smallest first."""
    return sorted(PRESETS, key=lambda name: (PRESETS[name]["embed_dim"], PRESETS[name]["depth"]))


def make_config(preset: str, in_chans: int | None = None, **overrides: Any) -> ModelConfig:
    """Config of ``preset`` with overrides; ``in_chans`` picks default bands and normalisation.

    Raises:
        ConfigError: unknown preset (naming the nearest one) or unknown override key.
    """
    if preset not in PRESETS:
        near = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(
            f"unknown preset {preset!r}; {hint}available: {', '.join(list_presets())}"
        )
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset]}
    if in_chans is not None:
        if in_chans not in _DEFAULT_BANDS:
            raise ConfigError(f"in_chans must be 1, 2 or 3, got {in_chans}")
        if "data" in overrides:
            raise ConfigError("give either in_chans or data, not both")
        bands, mean, std = _DEFAULT_BANDS[in_chans]
        values["data"] = SarDataConfig(
            polarisations=list(bands), normalization=Normalization(list(mean), list(std))
        )
    values.update(overrides)
    return ModelConfig.from_dict(values)

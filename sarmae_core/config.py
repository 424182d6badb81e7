"""Configuration dataclasses shared by the model, training, export and inference.

Configuration flows one way: config file or flags -> these dataclasses -> model -> checkpoint or
ONNX metadata -> plugin UI. Everything here is plain data that round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

#: Radiometric units a SAR raster or tensor can be in.
UNITS = ("intensity", "amplitude", "db")
#: How the model scales its input: fixed statistics, or each tile by its own.
NORMALIZATION_MODES = ("fixed", "per_tile")


@dataclass
class Normalization:
    """Per-channel affine normalisation applied after conversion to the model's units.

    ``fixed``: ``x_model = (x_units - mean) / std``. For dB input the defaults are close to the
    global statistics of Sentinel-1 sigma0 over land and water (VV about -12 dB, VH about -19 dB).
    ``per_tile``: each tile standardised by its own statistics (see
    ``sarmae_core.models.normalization``); mean and std then only document the data.
    """

    mean: list[float] = field(default_factory=lambda: [-12.0])
    std: list[float] = field(default_factory=lambda: [5.0])
    mode: str = "fixed"

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATION_MODES:
            raise ConfigError(
                f"unknown normalisation mode {self.mode!r}; "
                f"use one of {', '.join(NORMALIZATION_MODES)}"
            )
        if len(self.mean) != len(self.std):
            raise ConfigError(
                f"normalisation has {len(self.mean)} means but {len(self.std)} stds; "
                "give one of each per input channel"
            )
        if any(not math.isfinite(s) or s <= 0 for s in self.std):
            raise ConfigError(f"normalisation std must be positive and finite, got {self.std}")


#: The acquisitions of a two-date (change) model's channels.
DATES = ("before", "after")


@dataclass
class SarDataConfig:
    """What the model expects of its SAR input.

    Attributes:
        units: radiometric units of the input tensor: ``intensity`` (linear power, e.g. sigma0),
            ``amplitude`` (sqrt of intensity) or ``db`` (10 log10 intensity).
        polarisations: band names in channel order, e.g. ``["VV"]`` or ``["VV", "VH"]``.
        normalization: per-channel mean/std applied after the units conversion.
        looks: equivalent number of looks of the training data (for speckle modelling and as a
            hint when users' data differ).
        resolution: pixel size in metres the model was trained at (``None`` if unknown).
        resolution_range: ``[finest, coarsest]`` pixel sizes in metres the model was trained
            across (scale augmentation); inputs inside it are read on their own grid, others
            are resampled to the nearer end. ``None``: the model knows ``resolution`` only.
        dates: for a model of two acquisitions (flood as change), the date of each channel,
            ``before`` or ``after`` (e.g. polarisations ``[VV, VV]``, dates ``[before, after]``);
            empty for a single-date model.
    """

    units: str = "db"
    polarisations: list[str] = field(default_factory=lambda: ["VV"])
    normalization: Normalization = field(default_factory=Normalization)
    looks: float = 4.4
    resolution: float | None = 10.0
    resolution_range: list[float] | None = None
    dates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dates = list(self.dates or [])
        if self.dates and (
            len(self.dates) != len(self.polarisations)
            or any(d not in DATES for d in self.dates)
            or set(self.dates) != set(DATES)
        ):
            raise ConfigError(
                f"dates must give before or after for each of the {len(self.polarisations)} "
                f"channels, both dates present, got {self.dates}"
            )
        if self.resolution_range is not None:
            r = [float(v) for v in self.resolution_range]
            if len(r) != 2 or not (0 < r[0] <= r[1] and math.isfinite(r[1])):
                raise ConfigError(
                    f"resolution_range must be [finest, coarsest] metres with 0 < finest <= "
                    f"coarsest, got {self.resolution_range}"
                )
            if self.resolution is not None and not r[0] <= self.resolution <= r[1]:
                raise ConfigError(
                    f"resolution {self.resolution} m lies outside resolution_range {r}"
                )
            self.resolution_range = r
        if isinstance(self.normalization, dict):
            self.normalization = Normalization(**self.normalization)
        if self.units not in UNITS:
            raise ConfigError(f"unknown units {self.units!r}; use one of {', '.join(UNITS)}")
        if len(self.normalization.mean) != len(self.polarisations):
            raise ConfigError(
                f"{len(self.polarisations)} polarisations {self.polarisations} but normalisation "
                f"for {len(self.normalization.mean)} channels; give one mean/std per band"
            )
        if self.looks <= 0:
            raise ConfigError(f"looks must be positive, got {self.looks}")

    @property
    def in_chans(self) -> int:
        return len(self.polarisations)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``data``, naming an unknown key and the nearest valid one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown {cls.__name__} key {key!r}{hint}")
    return cls(**data)

"""Radiometric unit conversions for SAR: linear intensity, amplitude, dB and complex SLC.

Every function takes a NumPy array or a torch tensor and returns the same kind, so the torch-free
inference path (QGIS plugin, onnxruntime) and the training code share one definition. This module
must not import torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import UNITS
from .errors import InputError

#: Floor applied before taking a logarithm: -100 dB, far below any sensor's noise floor, keeps
#: log10 finite on zero-valued pixels (shadow, masked areas) without biasing real backscatter.
INTENSITY_FLOOR = 1e-10


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def db_to_intensity(x_db: Any) -> Any:
    """10 ** (dB / 10)."""
    return 10.0 ** (x_db / 10.0)


def intensity_to_db(x: Any) -> Any:
    """10 log10(I), with I floored at :data:`INTENSITY_FLOOR`."""
    if _is_torch(x):
        return 10.0 * x.clamp_min(INTENSITY_FLOOR).log10()
    return 10.0 * np.log10(np.maximum(x, INTENSITY_FLOOR))


def amplitude_to_intensity(a: Any) -> Any:
    return a * a


def intensity_to_amplitude(x: Any) -> Any:
    if _is_torch(x):
        return x.clamp_min(0).sqrt()
    return np.sqrt(np.maximum(x, 0))


def complex_to_intensity(slc: Any) -> Any:
    """|s|^2 of complex SLC samples (the detected, single-look intensity)."""
    if _is_torch(slc):
        return slc.real**2 + slc.imag**2
    return np.real(slc) ** 2 + np.imag(slc) ** 2


def to_intensity(x: Any, units: str) -> Any:
    """Convert ``x`` in ``units`` to linear intensity."""
    check_units(units)
    if units == "intensity":
        return x
    if units == "amplitude":
        return amplitude_to_intensity(x)
    return db_to_intensity(x)


def from_intensity(x: Any, units: str) -> Any:
    """Convert linear intensity ``x`` to ``units``."""
    check_units(units)
    if units == "intensity":
        return x
    if units == "amplitude":
        return intensity_to_amplitude(x)
    return intensity_to_db(x)


def convert(x: Any, src: str, dst: str) -> Any:
    """Convert between any two of :data:`UNITS` (``complex`` is accepted as a source)."""
    if src == "complex":
        return from_intensity(complex_to_intensity(x), dst)
    if src == dst:
        check_units(src)
        return x
    return from_intensity(to_intensity(x, src), dst)


def check_units(units: str) -> None:
    if units not in UNITS:
        raise InputError(
            f"unknown units {units!r}: say whether the data are {', '.join(UNITS)} (or complex SLC)"
        )

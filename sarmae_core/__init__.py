"""sarmae: SAR foundation models (SARMAE) from pretraining to maps.

The public API is small: :func:`predict`, :func:`predict_many` (their settings:
:class:`RunOptions`), :func:`create_model`,
:func:`load_model`, :func:`export_onnx`. Names are resolved lazily so that ``import sarmae_core``
stays cheap and torch-free: the QGIS plugin runs inference with numpy, onnxruntime and GDAL only.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "predict": ("sarmae_core.inference.predict", "predict"),
    "predict_many": ("sarmae_core.inference.many", "predict_many"),
    "RunOptions": ("sarmae_core.inference.options", "RunOptions"),
    "create_model": ("sarmae_core.models.mae", "create_model"),
    "load_model": ("sarmae_core.models.checkpoint", "load_checkpoint"),
    "save_model": ("sarmae_core.models.checkpoint", "save_checkpoint"),
    "load_authors_checkpoint": ("sarmae_core.models.checkpoint", "load_authors_checkpoint"),
    "export_onnx": ("sarmae_core.export.onnx", "export_onnx"),
    "list_presets": ("sarmae_core.models.registry", "list_presets"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sarmae_core' has no attribute {name!r}")

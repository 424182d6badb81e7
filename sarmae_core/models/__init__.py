"""SARMAE models: encoder, pretraining model, registry, checkpoints."""

from .checkpoint import LoadReport, load_authors_checkpoint, load_checkpoint, save_checkpoint
from .mae import SARMAE, MAEOutput, create_model
from .registry import ModelConfig, SarcConfig, list_presets, make_config
from .vit import SarViTEncoder

__all__ = [
    "SARMAE",
    "LoadReport",
    "MAEOutput",
    "ModelConfig",
    "SarViTEncoder",
    "SarcConfig",
    "create_model",
    "list_presets",
    "load_authors_checkpoint",
    "load_checkpoint",
    "make_config",
    "save_checkpoint",
]

"""Run a torch task model as an inference backend (only when asked for: ``backend="torch"``).

It lives with the models it runs and registers itself with the engine
(:func:`sarmae_core.inference.model.backends.register_backend`); :mod:`sarmae_core.inference`
never imports torch, and imports this module by its registered name only when a torch model
or a checkpoint is run, so a QGIS install with onnxruntime alone keeps working.
Task models (:mod:`sarmae_core.models.heads`) take physical units and normalise inside, like
the exported ONNX graphs, so both backends are fed the same arrays.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..contract.metadata import ModelInfo
from ..errors import ConfigError
from ..inference.model.backends import register_backend
from ..inference.notes import Notes


def info_from_task_model(model: Any, tile_size: int | None = None) -> ModelInfo:
    """:class:`ModelInfo` of a torch task model, as the ONNX exporter would write it."""
    return ModelInfo.from_task_model(model, tile_size)


class TorchBackend:
    """A torch task model behind the :class:`~.backends.Backend` interface.

    Args:
        model: a task model whose ``forward(x)`` returns segmentation or classification logits
            ``[N, K, ...]`` (softmax is applied here) or a detection dict of ``heatmap``,
            ``size`` and ``offset``.
        info: its metadata; default: read from the model's config.
        device: ``auto`` (CUDA when torch sees a GPU), ``cuda`` or ``cpu``.
        notes: receives the device that ran.
    """

    name = "torch"

    def __init__(
        self,
        model: Any,
        info: ModelInfo | None = None,
        device: str = "auto",
        notes: Notes | None = None,
    ) -> None:
        import torch

        notes = notes if notes is not None else Notes()
        if device not in ("auto", "cuda", "cpu"):
            raise ConfigError(f"unknown device {device!r}; use auto, cuda or cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device='cuda' but torch sees no CUDA GPU; use device='cpu'")
        use_cuda = device != "cpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.model = model.eval().to(self.device)
        self.info = info or info_from_task_model(model)
        self.providers = [str(self.device)]
        self.tile_shape = None
        notes.info(f"torch ran on {self.device}")

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str = "auto", notes: Notes | None = None
    ) -> TorchBackend:
        """Load a task-model checkpoint written by :func:`sarmae_core.models.save_checkpoint`."""
        from .checkpoint import load_checkpoint

        model = load_checkpoint(path)
        if not hasattr(model, "class_names"):
            raise ConfigError(
                f"{path} is a pretraining checkpoint; fine-tune a task model before predicting"
            )
        return cls(model, device=device, notes=notes)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
        with torch.inference_mode():
            out = self.model(x)
            if isinstance(out, dict):
                return {k: v.float().cpu().numpy() for k, v in out.items()}
            return {"probabilities": out.float().softmax(dim=1).cpu().numpy()}


register_backend("torch", TorchBackend)

"""Model backends: anything that maps a batch of tiles to named output arrays.

The inference engine only sees :class:`Backend`: ``run(batch [N, C, H, W] float32) -> dict of
arrays``, a ``name``, the ``providers`` that actually ran and the model's :class:`ModelInfo`.
onnxruntime is the default (torch-free, what QGIS users can install); a torch backend plugs in
through the same interface, registered from the models side (:mod:`sarmae_core.models.backend`,
imported by that name only when asked for); :class:`CallableBackend` wraps any Python function.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...contract.metadata import ModelInfo
from ...contract.reader import model_info_from_session
from ...errors import CheckpointError, ConfigError
from ..notes import Notes

#: Where bundled models live (resolved without importing sarmae_core.models, which needs torch).
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "models" / "bundled"
#: Output tensors each task must provide.
TASK_OUTPUTS = {
    "segmentation": ("probabilities",),
    "detection": ("heatmap", "size", "offset"),
    "classification": ("probabilities",),
}
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
#: onnxruntime's idle threads spin waiting for the next operator (its default). Measured by
#: ``benchmarks/onnxruntime_settings.py`` (README, "onnxruntime settings").
SPINNING = True


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a model.

    Attributes:
        name: backend name shown to users (``onnxruntime``, ``torch``, ...).
        providers: where it runs, in use order (e.g. ``["CPUExecutionProvider"]``).
        info: the model's metadata (task, units, bands, tile size, thresholds).
        tile_shape: fixed ``(H, W)`` the model accepts, or None when any size goes.
    """

    name: str
    providers: list[str]
    info: ModelInfo
    tile_shape: tuple[int, int] | None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """[N, C, H, W] float32 in the model's units -> named outputs (see ``TASK_OUTPUTS``)."""
        ...


class CallableBackend:
    """A Python function as a backend (custom models, tests).

    Args:
        fn: ``fn(batch) -> dict[str, np.ndarray]`` following :data:`TASK_OUTPUTS`.
        info: the model's metadata.
        name: backend name to report.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], dict[str, np.ndarray]],
        info: ModelInfo,
        name: str = "python",
    ) -> None:
        self.fn, self.info, self.name = fn, info, name
        self.providers = ["python"]
        self.tile_shape = None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.fn(batch)


class OnnxBackend:
    """An ONNX model written by ``sarmae export``, run with onnxruntime.

    Args:
        path: the ``.onnx`` file.
        device: ``auto`` (CUDA when onnxruntime has it, else CPU), ``cuda`` or ``cpu``.
        notes: receives which provider ran and why a present GPU was not used.
        threads: CPU threads for one operator (onnxruntime's ``intra_op_num_threads``); None
            for onnxruntime's default, one per physical core (as torch's default).
        spinning: whether onnxruntime's idle threads spin waiting for work
            (``session.intra_op.allow_spinning``; None: :data:`SPINNING`).
        level: graph optimisation level, ``basic``, ``extended`` or ``all`` (the default).

    Raises:
        CheckpointError: a file that is not ONNX, is damaged, or was not written by sarmae.
        ConfigError: ``device='cuda'`` without a CUDA-enabled onnxruntime.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "auto",
        notes: Notes | None = None,
        threads: int | None = None,
        spinning: bool | None = None,
        level: str = "all",
    ):
        import onnxruntime as ort

        notes = notes if notes is not None else Notes()
        self.path = Path(path)
        available = ort.get_available_providers()
        cuda = "CUDAExecutionProvider" in available
        if device == "cuda" and not cuda:
            raise ConfigError(
                "device='cuda' but this onnxruntime has no CUDA provider (available: "
                f"{', '.join(available)}); install onnxruntime-gpu, or use device='cpu'"
            )
        if device not in ("auto", "cuda", "cpu"):
            raise ConfigError(f"unknown device {device!r}; use auto, cuda or cpu")
        wanted = ["CPUExecutionProvider"]
        if cuda and device != "cpu":
            wanted.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # its errors come back as the exception below
        # All graph optimisations (onnxruntime's default, stated): fusions and the NCHWc
        # layout of convolutions for this CPU. Creating the session takes ~0.2 s for the
        # bundled models, so the optimised graph is not cached on disk.
        levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}  # fmt: skip
        if level not in levels:
            raise ConfigError(
                f"unknown graph optimisation level {level!r}; use {', '.join(levels)}"
            )
        options.graph_optimization_level = levels[level]
        spin = SPINNING if spinning is None else spinning
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be at least 1, got {threads}")
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise CheckpointError(
                f"{self.path} is not a usable ONNX model ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]}); export one with `sarmae export`"
            ) from exc
        self.info = model_info_from_session(self.session, source=str(self.path))
        self.providers = list(self.session.get_providers())
        if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in self.providers:
            notes.warn(
                "onnxruntime has a CUDA provider but it failed to start (check the CUDA and "
                "cuDNN versions onnxruntime-gpu needs); running on the CPU"
            )
        notes.info(f"onnxruntime ran on {self.providers[0]}")
        self._check_io()

    def _check_io(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise CheckpointError(
                f"{self.path} must take one [N, C, H, W] input, it takes "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        self._input = inputs[0].name
        _, c, h, w = inputs[0].shape
        if isinstance(c, int) and c != self.info.in_chans:
            raise CheckpointError(
                f"{self.path} takes {c} channels but its metadata names "
                f"{self.info.in_chans} polarisations {self.info.polarisations}"
            )
        self.tile_shape = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self._outputs = [o.name for o in self.session.get_outputs()]
        missing = [n for n in TASK_OUTPUTS[self.info.task] if n not in self._outputs]
        if missing:
            raise CheckpointError(
                f"{self.path} is a {self.info.task} model but lacks outputs {missing} "
                f"(it has {self._outputs})"
            )

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})
        return dict(zip(self._outputs, values, strict=True))


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A model file path, or a bundled model's by name.

    Raises:
        CheckpointError: a file that does not exist, or an unknown bundled model.
    """
    text = os.fspath(model)
    path = Path(text)
    if path.exists():
        return path
    if path.suffix or os.sep in text or "/" in text:
        raise CheckpointError(f"model file {path} does not exist")
    bundled = BUNDLED_DIR / f"{text}.onnx"
    if bundled.exists():
        return bundled
    have = sorted(p.stem for p in BUNDLED_DIR.glob("*.onnx")) if BUNDLED_DIR.is_dir() else []
    raise CheckpointError(
        f"no bundled model named {text!r} (looked for {bundled}); bundled models: "
        f"{', '.join(have) or 'none installed yet'}. Pass the path of an .onnx file from "
        "`sarmae export` or of a checkpoint instead"
    )


#: Backends that live with what they run and register themselves (name -> class); the torch
#: one comes from the models package, which needs torch.
_REGISTERED: dict[str, Any] = {}
#: Where a backend not yet registered is (a module of this sarmae_core), imported on first use.
_PROVIDERS = {"torch": "models.backend"}


def register_backend(name: str, backend_class: Any) -> None:
    """Make ``backend_class`` the backend ``name`` (called by the module that defines it)."""
    _REGISTERED[name] = backend_class


def registered_backend(name: str) -> Any:
    """The class registered as backend ``name``, importing its provider when needed.

    Raises:
        ConfigError: the provider cannot be imported (torch not installed).
    """
    if name not in _REGISTERED and name in _PROVIDERS:
        root = __name__.rsplit(".inference.", 1)[0]  # sarmae_core, or the plugin's vendored copy
        try:
            importlib.import_module(f"{root}.{_PROVIDERS[name]}")
        except ImportError as exc:
            raise ConfigError(
                f"the {name} backend needs torch ({exc}): pip install 'sarmae[train]', or run "
                "an ONNX file with backend='onnxruntime'"
            ) from exc
    if name not in _REGISTERED:
        raise ConfigError(f"no backend named {name!r}")
    return _REGISTERED[name]


def load_backend(
    model: Any, backend: str = "auto", device: str = "auto", notes: Notes | None = None
) -> Backend:
    """A backend for ``model``: a :class:`Backend`, a torch task model, or a name/path.

    Args:
        model: a backend object, a torch task model, a bundled model name, ``cfar`` (CA-CFAR
            ship detection with default settings, :mod:`.cfar`), or a path to an ``.onnx``
            file or a checkpoint (``.safetensors``, ``.pt``, ...).
        backend: ``auto`` (onnxruntime for ONNX files, torch for checkpoints), ``onnxruntime``
            or ``torch``.
        device: ``auto``, ``cuda`` or ``cpu``.
        notes: receives what was chosen.
    """
    if backend not in ("auto", "onnxruntime", "torch"):
        raise ConfigError(f"unknown backend {backend!r}; use auto, onnxruntime or torch")
    if isinstance(model, Backend):
        return model
    if hasattr(model, "forward") and hasattr(model, "class_names"):  # a torch task model
        if backend == "onnxruntime":
            raise ConfigError("backend='onnxruntime' needs an ONNX file, not a torch model")
        return registered_backend("torch")(model, device=device, notes=notes)
    if isinstance(model, str) and model == "cfar" and not Path(model).exists():
        from .cfar import CfarDetector

        return CfarDetector()  # the classic detector with its documented defaults
    path = resolve_model_path(model)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        if backend == "onnxruntime":
            raise ConfigError(
                f"{path.name} is a checkpoint: export it to ONNX first (`sarmae export`) or use "
                "backend='torch'"
            )
        return registered_backend("torch").from_checkpoint(path, device=device, notes=notes)
    if backend == "torch":
        raise ConfigError(
            f"backend='torch' needs a checkpoint or a torch model; {path.name} is not one "
            "(ONNX files run with backend='onnxruntime')"
        )
    return OnnxBackend(path, device=device, notes=notes)

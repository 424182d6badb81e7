"""The models the plugin can run: the bundled Water and Ships models, or any sarmae ``.onnx``.

A model's parameters (task, bands, units, tile, thresholds) travel in its ONNX metadata
(``sarmae_core.contract.metadata.ModelInfo``); the form fills itself from there. Reading it uses
onnxruntime only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .core import bundled_models_dir, core
from .params import JOB_TITLE
from .validation import InputRefused

#: Bundled model name of each job (``sarmae_core/models/bundled/<name>.onnx``).
BUNDLED = {"water": "water", "ships": "ships", "flood": "flood"}


@dataclass(frozen=True)
class ModelChoice:
    """A model resolved for a run: where it is, what it says about itself, how to call it."""

    path: Path
    info: Any  # sarmae_core.contract.metadata.ModelInfo (the vendored or the installed class)
    bundled: bool

    @property
    def label(self) -> str:
        return self.info.name or self.path.stem


def bundled_models() -> dict[str, Path]:
    """Bundled models present in this installation, by job."""
    folder = bundled_models_dir()
    found = {job: folder / f"{name}.onnx" for job, name in BUNDLED.items()}
    return {job: path for job, path in found.items() if path.is_file()}


def model_info(path: str | os.PathLike[str]) -> Any:
    """The ``ModelInfo`` of an ONNX file (cached until the file changes).

    Raises:
        InputRefused: missing file, not ONNX, or not a sarmae model (e.g. a Deepness one).
    """
    p = Path(path)
    if not p.is_file():
        raise InputRefused(f"no model file at {p}")
    if p.suffix.lower() != ".onnx":
        raise InputRefused(
            f"{p.name} is not an .onnx file; the plugin runs ONNX models exported with "
            "`sarmae export` (checkpoints need torch, which QGIS does not have)"
        )
    stat = p.stat()
    return _read_info(str(p.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _read_info(path: str, _mtime: int, _size: int) -> Any:
    errors = core("errors")
    try:
        return core("contract.reader").read_model_info(path)
    except errors.SarmaeError as exc:
        raise InputRefused(str(exc)) from exc


def bundled_for_layer(job: str, raster: str | None, bands: Any = None) -> Path | None:
    """The bundled model of ``job`` for a raster, chosen by the engine's rule
    (:mod:`sarmae_core.inference.model.bundled`: Water VV, or Water VV+VH when two bands are given),
    as ``sarmae predict`` does.

    ``bands``: the form's band choice (one per model channel) or None to map by name.
    """
    default = bundled_models().get(job)
    if default is None or not raster:
        return default
    name = core("inference.model.bundled").bundled_for_raster(
        job, raster, list(bands) if bands else None, bundled_models_dir()
    )
    path = bundled_models_dir() / f"{name}.onnx"
    return path if path.is_file() else default


def variants_text(job: str) -> str:
    """`` (VV, VV+VH)`` when more than one bundled variant of ``job`` is installed."""
    variants = core("inference.model.bundled").VARIANTS.get(job, ())
    here = ["+".join(p) for n, p, _ in variants if (bundled_models_dir() / f"{n}.onnx").is_file()]
    return f" ({', '.join(reversed(here))})" if len(here) > 1 else ""


def resolve_model(
    job: str, model: str, raster: str | None = None, bands: Any = None
) -> ModelChoice:
    """The model a run of ``job`` uses: ``model`` if given, else the bundled one for ``raster``
    (see :func:`bundled_for_layer`).

    Raises:
        InputRefused: the bundled model is not installed, or the file is not a sarmae model.
    """
    if model:
        return ModelChoice(Path(model), model_info(model), bundled=False)
    path = bundled_for_layer(job, raster, bands)
    if path is None:
        raise InputRefused(
            f"the bundled model for {JOB_TITLE[job]} is not installed in this version of the "
            f"plugin (looked for {bundled_models_dir() / (BUNDLED[job] + '.onnx')}). Choose "
            "a model file (.onnx) exported with `sarmae export` under Model"
        )
    return ModelChoice(path, model_info(path), bundled=True)


def describe(info: Any) -> str:
    """One line about a model for the form: task, bands and units, pixel size, tile."""
    trained = core("inference.scene.source").trained_for(info)
    res = "" if trained == "any pixel size" else f", {trained}"
    names = ", ".join(n for n in info.class_names if n not in ("background",)) or "-"
    return (
        f"{info.task} ({names}) · {'+'.join(info.polarisations)} in {info.units}{res} · "
        f"tile {info.tile_size} px"
    )

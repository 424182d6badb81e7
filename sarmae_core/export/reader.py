"""Read the :class:`ModelInfo` of an exported sarmae ONNX model, torch-free.

Uses onnxruntime only (what the QGIS plugin's inference path has: numpy, onnxruntime, GDAL),
not the ``onnx`` package and never torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .metadata import ModelInfo


def model_info_from_session(session: Any, source: str = "model") -> ModelInfo:
    """:class:`ModelInfo` of an open ``onnxruntime.InferenceSession``.

    Lets the inference pipeline read the metadata from the session it runs, rather than
    loading the file twice.

    Raises:
        CheckpointError: the model carries no (or damaged) sarmae metadata.
    """
    props = dict(session.get_modelmeta().custom_metadata_map)
    return ModelInfo.from_metadata_props(props, source=source)


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """:class:`ModelInfo` stored in the ``metadata_props`` of the ONNX file at ``path``.

    Raises:
        CheckpointError: the file is missing, is not an ONNX model (corrupt, truncated, another
            format) or is an ONNX model not written by sarmae.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no model file at {path}")
    options = ort.SessionOptions()
    # Only the metadata is wanted: skip graph optimisation, the costly part of opening a model.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # onnxruntime's own errors come back as the exception
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable ONNX model ({first}); the file may be truncated or "
            "of another format: export it again with `sarmae export`"
        ) from exc
    return model_info_from_session(session, source=str(path))

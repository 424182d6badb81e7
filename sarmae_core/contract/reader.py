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

#: The first onnxruntime release that reads each ONNX IR version and implements each default-
#: domain opset (onnxruntime's docs/Versioning.md). Users of other plugins keep meeting
#: "Unsupported model IR version" with no hint of what to upgrade: these turn it into a version.
ORT_FOR_IR = {8: (1, 14), 9: (1, 15), 10: (1, 18), 11: (1, 22)}
ORT_FOR_OPSET = {18: (1, 14), 19: (1, 15), 20: (1, 17), 21: (1, 18), 22: (1, 20), 23: (1, 22)}


def _varint(f: Any) -> int:
    shift = value = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise EOFError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            return value


def onnx_versions(path: str | os.PathLike[str]) -> tuple[int, dict[str, int]]:
    """IR version and opsets (domain -> version) of an ONNX file, read from its protobuf header
    without onnx or onnxruntime: the graph (most of the file) is skipped, not parsed.

    Raises:
        CheckpointError: not a readable ONNX protobuf.
    """
    ir, opsets = 0, {}
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while f.tell() < size:
                key = _varint(f)
                field, wire = key >> 3, key & 7
                if wire == 0:
                    value = _varint(f)
                    if field == 1:  # ModelProto.ir_version
                        ir = value
                elif wire == 2:
                    length = _varint(f)
                    if field == 8:  # ModelProto.opset_import: OperatorSetIdProto
                        domain, version = _opset(f.read(length))
                        opsets[domain] = version
                    else:
                        f.seek(length, os.SEEK_CUR)
                elif wire in (1, 5):
                    f.seek(8 if wire == 1 else 4, os.SEEK_CUR)
                else:
                    raise ValueError(f"wire type {wire}")
    except (OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable ONNX model ({exc})") from exc
    return ir, opsets


def _opset(data: bytes) -> tuple[str, int]:
    import io

    f, domain, version = io.BytesIO(data), "", 0
    while f.tell() < len(data):
        key = _varint(f)
        if key == (1 << 3 | 2):
            domain = f.read(_varint(f)).decode("utf-8", "replace")
        elif key == (2 << 3 | 0):
            version = _varint(f)
        else:
            raise ValueError("unexpected field in opset_import")
    return domain, version


def onnxruntime_needed(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The oldest onnxruntime (major, minor) that reads the model at ``path``."""
    ir, opsets = onnx_versions(path)
    need = [ORT_FOR_IR.get(ir, max(ORT_FOR_IR.values()) if ir > 11 else (1, 0))]
    opset = opsets.get("", opsets.get("ai.onnx", 0))
    need.append(ORT_FOR_OPSET.get(opset, max(ORT_FOR_OPSET.values()) if opset > 23 else (1, 0)))
    return max(need)


def onnxruntime_too_old(path: str | os.PathLike[str], installed: str) -> str | None:
    """What to upgrade when onnxruntime ``installed`` cannot read ``path``, else None."""
    need = onnxruntime_needed(path)
    have = tuple(int(p) for p in installed.split("+")[0].split(".")[:2] if p.isdigit())
    if have >= need:
        return None
    ir, _ = onnx_versions(path)
    want = ".".join(map(str, need))
    return (
        f"{Path(path).name} is ONNX IR {ir}, which onnxruntime {installed} cannot read: "
        f"upgrade onnxruntime to {want} or newer (pip install -U 'onnxruntime>={want}')"
    )


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
        try:
            too_old = onnxruntime_too_old(path, ort.__version__)
        except CheckpointError:
            too_old = None
        if too_old is not None:
            raise CheckpointError(too_old) from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable ONNX model ({first}); the file may be truncated or "
            "of another format: export it again with `sarmae export`"
        ) from exc
    return model_info_from_session(session, source=str(path))

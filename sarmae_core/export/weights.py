"""Smaller ONNX models: float32 weights stored as float16, or matrix products in int8.

``float16``: each large float32 initializer is replaced by a float16 copy and a ``Cast`` back to
float32 under the original name, so every operator still sees float32 (onnxruntime's CPU kernels
are float32; a graph computed in float16 would run slower there, through inserted casts). At
session start onnxruntime folds the casts into constants: the running graph and its speed are
those of the float32 file, and only the rounding of the weights to float16 remains. 0.51x the
bytes; any device.

``int8``: onnxruntime's dynamic quantisation of the matrix products (int8 weights, activations
quantised per batch at run time), then the weights left in float32 (the fused attention's,
convolutions) stored as float16. 0.34x the bytes and a little faster on a CPU (``predict`` on
the held-out sets 1.07-1.15x, 2 cores), but ``MatMulInteger`` is a CPU kernel: for the CPU-only
places (the QGIS plugin installs the CPU onnxruntime), not for files a GPU may run.

Measured on the bundled models through ``predict`` on the held-out sets (README, "Smaller
models", ``training/recipes/smaller_models.sh``): IoU and AP within 0.1 point of the float32 files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ConfigError
from ..files import atomic_path

#: float16's largest finite value: a weight beyond it stays float32 (it would become inf).
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: Smaller tensors (biases, norms, scalars) stay float32: they weigh nothing and shape
#: computations read some of them.
MIN_ELEMENTS = 1024
#: Suffix of a float16 copy's name; its Cast node writes the original name.
SUFFIX = "__float16"


def store_float16(proto: onnx.ModelProto, min_elements: int = MIN_ELEMENTS) -> int:
    """Store ``proto``'s large float32 weights as float16 with a Cast to float32, in place.

    Metadata (the :class:`~sarmae_core.contract.metadata.ModelInfo` contract) is untouched.

    Returns:
        How many initializers were converted (0: nothing to do, e.g. already converted).
    """
    graph = proto.graph
    inputs = {i.name for i in graph.input}  # an initializer that is also an input can be fed
    kept: list[TensorProto] = []
    casts: list[onnx.NodeProto] = []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or tensor.name in inputs:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        if values.size < min_elements or not np.all(np.abs(values) <= FLOAT16_MAX):
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(values.astype(np.float16), tensor.name + SUFFIX)
        kept.append(half)
        casts.append(
            helper.make_node(
                "Cast", [half.name], [tensor.name], to=TensorProto.FLOAT, name=half.name + "_cast"
            )
        )
    if not casts:
        return 0
    nodes = list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # topological order: the casts read only initializers
    onnx.checker.check_model(proto)
    return len(casts)


#: How a file can store its weights: as exported, float16-stored, int8 matrix products.
WEIGHTS = ("float32", "float16", "int8")


def quantise_int8(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with its MatMul/Gemm weights quantised to int8 (dynamic quantisation) and the
    rest of its large weights stored as float16; metadata kept."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(proto.SerializeToString())
        root = logging.getLogger()
        was, root.disabled = root.disabled, True
        try:  # it logs a hint to run its pre-processing at WARNING on the root logger
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"])  # fmt: skip
        finally:
            root.disabled = was
        out = onnx.load(str(dst))
    del out.metadata_props[:]
    out.metadata_props.extend(proto.metadata_props)
    store_float16(out)
    return out


def compact_bytes(source: str | os.PathLike[str] | bytes, weights: str) -> bytes:
    """The serialised model of ``source`` (a path or ONNX bytes) with ``weights`` storage."""
    if weights not in WEIGHTS:
        raise ConfigError(f"unknown weights {weights!r}; use one of {', '.join(WEIGHTS)}")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if weights == "float32":
        return data
    proto = onnx.load_from_string(data)
    if weights == "int8":
        proto = quantise_int8(proto)
    else:
        store_float16(proto)
    return proto.SerializeToString()


def write_compact(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    weights: str,
    overwrite: bool = False,
) -> Path:
    """Write ``source``'s model with ``weights`` storage to ``target`` (atomically)."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    data = compact_bytes(source, weights)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target

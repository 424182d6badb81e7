"""Half the file size of an ONNX model: float32 weights stored as float16, computed in float32.

Each large float32 initializer is replaced by a float16 copy and a ``Cast`` back to float32
under the original name, so every operator still sees float32 (onnxruntime's CPU kernels are
float32; a graph computed in float16 would run slower there, through inserted casts). At session
start onnxruntime folds the casts into constants: the running graph and its speed are those of
the float32 file, and only the rounding of the weights to float16 (11-bit mantissa) remains.
Measured on the bundled models (README, "Smaller models"): held-out IoU and AP unchanged to the
first decimal, file sizes 0.51x.

Not int8: onnxruntime's dynamic int8 quantisation of the MatMuls was no faster than float32 here
(2 cores, batch 4 of 256 px: 0.112 vs 0.113 s), fused attention keeps its weights in float32
(so the file shrank only to 0.48x), and it moved probabilities by up to 3e-3 instead of 1e-4.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def float16_weights_bytes(
    source: str | os.PathLike[str] | bytes, min_elements: int = MIN_ELEMENTS
) -> bytes:
    """The serialised model of ``source`` (a path or ONNX bytes) with float16-stored weights."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    proto = onnx.load_from_string(data)
    store_float16(proto, min_elements)
    return proto.SerializeToString()


def write_float16_weights(
    source: str | os.PathLike[str], target: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write ``source``'s model with float16-stored weights to ``target`` (atomically)."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    data = float16_weights_bytes(source)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target

"""Graph rewrites applied to an exported ONNX proto before it is written.

:func:`fuse_attention` replaces each encoder block's self-attention subgraph (QKV projection,
head split, scaled dot product, softmax, head merge) by one ``com.microsoft.Attention`` node:
onnxruntime's fused kernel for it exists on CPU and CUDA since long before the onnxruntime
this package requires, and neither its own optimiser nor ``onnxruntime.transformers`` matches
the pattern torch's exporter writes for timm's attention. The node is built from the torch
module (its weights and head count), not from the exported pattern, so it does not depend on
how an exporter version lays out the heads; only the block's attention input (the output of
``norm1``) and output (what ``attn.proj`` reads) are looked up in the graph.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import nn

#: Domain of onnxruntime's contrib operators.
MS_DOMAIN = "com.microsoft"


def _standard_attention(attn: nn.Module, dim: int) -> bool:
    """Whether ``attn`` is timm's plain multi-head self-attention (what the fused op computes)."""
    qkv, heads = getattr(attn, "qkv", None), getattr(attn, "num_heads", None)
    if not isinstance(qkv, nn.Linear) or qkv.bias is None or not heads:
        return False
    head_dim = dim // heads
    plain = all(
        isinstance(getattr(attn, name, nn.Identity()), nn.Identity)
        for name in ("q_norm", "k_norm", "norm")
    )
    scale = getattr(attn, "scale", head_dim**-0.5)
    return (
        plain
        and qkv.weight.shape == (3 * dim, dim)
        and head_dim * heads == dim
        and abs(float(scale) - head_dim**-0.5) < 1e-12
    )


def fuse_attention(proto: onnx.ModelProto, blocks: Sequence[nn.Module]) -> int:
    """Replace the attention of the encoder blocks in ``proto`` by fused nodes, in place.

    The k-th attention softmax of the graph (in topological order) is block k's. Its input is
    the one LayerNormalization upstream of it (``norm1``; shape computations are not followed),
    whose output must feed a MatMul by block k's QKV weight; its output is the tensor reached
    downstream that a MatMul by a [D, D] weight (``attn.proj``) reads. Parameter names are not
    used: exporters share identical initializers between modules (e.g. untrained norms).

    Args:
        proto: the exported model.
        blocks: the encoder's transformer blocks (timm ``Block``: ``norm1``, ``attn``).

    Returns:
        The number of blocks fused, or 0 (graph unchanged) when one of those in the graph
        cannot be (another kind of attention, a pattern not recognised).
    """
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    inits = {t.name: t for t in graph.initializer}
    fused: dict[str, onnx.NodeProto] = {}  # attention output name -> its new node
    weights = []
    softmaxes = [n for n in graph.node if n.op_type == "Softmax"]
    for k, (block, softmax) in enumerate(zip(blocks, softmaxes, strict=False)):
        dim = block.norm1.normalized_shape[0]
        qkv_t = block.attn.qkv.weight.detach().numpy().T.astype(np.float32)  # [D, 3D]
        x = _norm_upstream(softmax, producer)
        out = _proj_input(softmax, consumers, inits, dim)
        if not (_standard_attention(block.attn, dim) and x and out and out in producer):
            if k == 0:
                return 0  # no attention of this kind in the graph
            break  # the blocks after the last one a dense head reads are not in the graph
        if not any(
            n.op_type == "MatMul" and _init_equals(inits.get(n.input[1]), qkv_t)
            for n in consumers[x]
        ):
            return 0
        name = f"encoder.blocks.{k}.attn"
        w_name, b_name = f"{name}.qkv_weight_t", f"{name}.qkv_bias"
        weights += [
            numpy_helper.from_array(qkv_t, w_name),
            numpy_helper.from_array(
                block.attn.qkv.bias.detach().numpy().astype(np.float32), b_name
            ),
        ]
        fused[out] = helper.make_node(
            "Attention", [x, w_name, b_name], [out], name=f"{name}.fused",
            domain=MS_DOMAIN, num_heads=int(block.attn.num_heads),
        )  # fmt: skip
    if not fused:
        return 0
    nodes = [fused.get(n.output[0], n) if n.output else n for n in graph.node]
    graph.initializer.extend(weights)
    _drop_dead(graph, nodes)
    if not any(o.domain == MS_DOMAIN for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(fused)


def _norm_upstream(softmax: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> str | None:
    """Output of the one LayerNormalization the softmax depends on, shapes aside."""
    seen, todo, norms = set(), list(softmax.input), set()
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type == "LayerNormalization":
            norms.add(node.output[0])
        elif node.op_type != "Shape":
            todo.extend(i for i in node.input if i)
    return norms.pop() if len(norms) == 1 else None


def _proj_input(
    softmax: onnx.NodeProto,
    consumers: dict[str, list[onnx.NodeProto]],
    inits: dict[str, onnx.TensorProto],
    dim: int,
) -> str | None:
    """The tensor downstream of the softmax (single consumers) read by a MatMul by [D, D]."""
    name = softmax.output[0]
    for _ in range(8):
        users = consumers.get(name, [])
        if len(users) != 1:
            return None
        (user,) = users
        w = inits.get(user.input[1]) if user.op_type == "MatMul" and len(user.input) > 1 else None
        if w is not None and list(w.dims) == [dim, dim]:
            return name
        name = user.output[0]
    return None


def _init_equals(tensor: onnx.TensorProto | None, value: np.ndarray) -> bool:
    if tensor is None or list(tensor.dims) != list(value.shape):
        return False
    return bool(np.allclose(numpy_helper.to_array(tensor), value, rtol=0, atol=1e-6))


def _drop_dead(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Keep the nodes, initializers and value infos the graph's outputs depend on."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(nodes):  # nodes are in topological order
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    graph.ClearField("node")
    graph.node.extend(reversed(keep))
    for field in ("initializer", "value_info"):
        items = [t for t in getattr(graph, field) if t.name in needed]
        graph.ClearField(field)
        getattr(graph, field).extend(items)

"""Small SAR models for the plugin tests, written as ONNX graphs with sarmae's metadata.

Runs with the bundled models use the real ones (``sarmae_core/models/bundled``); these stand-ins
serve the tests that need a model of their own: a file to pick in the dock, a fixed tile size,
a model for the wrong job, a second model in the zip. Their outputs still mean something on the
real Sentinel-1 scene, so areas can be checked for plausibility. These graphs implement the
classic SAR baselines with the exact input/output contract of ``sarmae export`` (one
``[N, C, H, W]`` input in the model's units; ``probabilities`` for segmentation; CenterNet
``heatmap``/``size``/``offset`` for detection) and ``ModelInfo`` in ``metadata_props``:

- water: speckle-smoothed VV below a dB threshold (open water is a specular reflector, dark
  in VV; the classic Otsu/EM threshold baseline lands near -17 dB for Sentinel-1 VV);
- ships: bright point targets (local maxima well above the clutter).

``export_test_segmentation`` exports the real ``sarmae_test`` network (random weights) through
``sarmae_core.export.onnx`` to check that the plugin runs what the exporter writes. It needs
torch, which is fine in test set-up and never part of the plugin's inference path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sarmae_core.contract.metadata import ModelInfo

#: Threshold (dB) and slope (1/dB) of the water baseline: p(water) = sigmoid(k (t - VV_dB)).
WATER_THRESHOLD_DB, WATER_SLOPE = -17.0, 0.8
#: Bright-target baseline: peaks above this VV dB become ship candidates (stride 4 heatmap).
TARGET_THRESHOLD_DB, TARGET_SLOPE, TARGET_STRIDE, TARGET_SIZE_PX = -1.0, 1.5, 4, 4.0


def _const(name: str, value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def _save(graph: onnx.GraphProto, info: ModelInfo, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    helper.set_model_props(model, info.to_metadata_props())
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _input(tile: int | None) -> onnx.ValueInfoProto:
    side = tile if tile is not None else None
    dims = ["N", 1, side or "H", side or "W"]
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)


def make_water_model(path: Path, tile: int | None = None, name: str = "water") -> Path:
    """A VV dB water segmentation model (background, water); ``tile`` fixes H = W."""
    nodes = [
        # 5 x 5 mean: a few looks of speckle reduction before thresholding
        helper.make_node(
            "AveragePool",
            ["input"],
            ["smooth"],
            kernel_shape=[5, 5],
            pads=[2, 2, 2, 2],
            count_include_pad=0,
        ),
        helper.make_node("Sub", ["threshold", "smooth"], ["margin"]),
        helper.make_node("Mul", ["margin", "slope"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p_water"]),
        helper.make_node("Sub", ["one", "p_water"], ["p_land"]),
        helper.make_node("Concat", ["p_land", "p_water"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "sar_water_threshold",
        [_input(tile)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [_const("threshold", WATER_THRESHOLD_DB), _const("slope", WATER_SLOPE), _const("one", 1.0)],
    )
    info = ModelInfo(
        task="segmentation",
        class_names=["background", "water"],
        units="db",
        polarisations=["VV"],
        normalization={"mean": [0.0], "std": [1.0]},
        looks=4.4,
        resolution_m=20.0,
        tile_size=tile or 64,
        tile_overlap=16,
        patch_size=16,
        seg_threshold=0.5,
        preset="test-threshold",
        version="test",
        name=name,
        training_data="none (a -17 dB VV threshold written as a graph, for tests)",
        licence="Apache-2.0",
        outputs=["probabilities"],
    )
    return _save(graph, info, path)


def make_ships_model(path: Path, name: str = "ships") -> Path:
    """A VV dB bright-target detector with the CenterNet outputs of ``DetectionModel``."""
    s = TARGET_STRIDE
    nodes = [
        helper.make_node("MaxPool", ["input"], ["peak"], kernel_shape=[s, s], strides=[s, s]),
        helper.make_node("Sub", ["peak", "threshold"], ["margin"]),
        helper.make_node("Mul", ["margin", "slope"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["heatmap"]),
        helper.make_node("Mul", ["peak", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "box"], ["side"]),
        helper.make_node("Concat", ["side", "side"], ["size"], axis=1),
        helper.make_node("Add", ["zeros", "half"], ["centre"]),
        helper.make_node("Concat", ["centre", "centre"], ["offset"], axis=1),
    ]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", c, "h", "w"])
        for n, c in (("heatmap", 1), ("size", 2), ("offset", 2))
    ]
    graph = helper.make_graph(
        nodes,
        "sar_bright_targets",
        [_input(None)],
        outputs,
        [
            _const("threshold", TARGET_THRESHOLD_DB),
            _const("slope", TARGET_SLOPE),
            _const("zero", 0.0),
            _const("box", TARGET_SIZE_PX),
            _const("half", 0.5),
        ],
    )
    info = ModelInfo(
        task="detection",
        class_names=["ship"],
        units="db",
        polarisations=["VV"],
        normalization={"mean": [0.0], "std": [1.0]},
        resolution_m=20.0,
        tile_size=64,
        tile_overlap=16,
        patch_size=16,
        det_confidence=0.5,
        det_iou_threshold=0.3,
        preset="test-threshold",
        version="test",
        name=name,
        training_data="none (bright-target peaks written as a graph, for tests)",
        licence="Apache-2.0",
        outputs=["heatmap", "size", "offset"],
    )
    return _save(graph, info, path)


def export_test_segmentation(path: Path) -> Path:
    """The real ``sarmae_test`` segmentation network (random weights), as exported by sarmae."""
    import torch

    from sarmae_core.export.onnx import export_onnx
    from sarmae_core.models.heads import SegmentationModel
    from sarmae_core.models.registry import make_config

    torch.manual_seed(0)
    cfg = make_config("sarmae_test", data={"resolution": 20.0})
    model = SegmentationModel(cfg, 2, class_names=["background", "water"])
    # The legacy exporter takes a fraction of dynamo's time; the graph contract is the same.
    export_onnx(
        model,
        path,
        name="test-export",
        licence="Apache-2.0",
        training_data="none (random weights)",
        exporter="legacy",
    )
    return path


def make_flood_model(path: Path) -> Path:
    """A two-date flood model (channels VV before, VV after, in dB): log-ratio change
    detection, flood where the after scene is 6 dB or more darker than the before scene."""
    nodes = [
        helper.make_node("Conv", ["input", "w", "bias"], ["logit"]),  # before - after - 6 dB
        helper.make_node("Sigmoid", ["logit"], ["p_flood"]),
        helper.make_node("Sub", ["one", "p_flood"], ["p_other"]),
        helper.make_node("Concat", ["p_other", "p_flood"], ["probabilities"], axis=1),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, "H", "W"])]
    inits = [
        numpy_helper.from_array(np.array([[[[1.0]], [[-1.0]]]], np.float32), "w"),
        numpy_helper.from_array(np.array([-6.0], np.float32), "bias"),
        _const("one", 1.0),
    ]
    graph = helper.make_graph(
        nodes, "sar_log_ratio_flood", inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        inits,
    )  # fmt: skip
    info = ModelInfo(
        task="segmentation", class_names=["background", "flood"], units="db",
        polarisations=["VV", "VV"], dates=["before", "after"],
        normalization={"mean": [0.0, 0.0], "std": [1.0, 1.0]}, looks=4.4, resolution_m=20.0,
        tile_size=64, tile_overlap=16, patch_size=16, preset="test-log-ratio", version="test",
        name="flood", training_data="none (a 6 dB log-ratio written as a graph, for tests)",
    )  # fmt: skip
    return _save(graph, info, path)

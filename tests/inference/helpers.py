"""Test models and rasters for the inference engine, built from the real Sentinel-1 fixture.

The ONNX models are real graphs run by onnxruntime (``onnx.helper``), small enough to build in
a test: a blur-then-sigmoid "water" segmenter whose zero padding makes seams visible when
tiles are not blended, and a CenterNet-style "ship" detector that fires on bright blobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import rasterio
from onnx import TensorProto, helper, numpy_helper
from rasterio.warp import Resampling, calculate_default_transform, reproject

from sarmae_core.contract.metadata import ModelInfo

from ..conftest import S1_VV_DB

#: Water threshold of the test segmenter, dB: the darkest quarter of the fixture scene.
WATER_DB = -15.0


def seg_info(**overrides: Any) -> ModelInfo:
    values: dict[str, Any] = dict(
        task="segmentation", class_names=["background", "water"], units="db",
        polarisations=["VV"], normalization={"mean": [-12.0], "std": [5.0]}, resolution_m=20.0,
        tile_size=64, tile_overlap=16, patch_size=16, seg_threshold=0.5, name="water-test",
    )  # fmt: skip
    values.update(overrides)
    return ModelInfo(**values)


def det_info(**overrides: Any) -> ModelInfo:
    values: dict[str, Any] = dict(
        task="detection", class_names=["ship"], units="db", polarisations=["VV"],
        resolution_m=20.0, tile_size=64, tile_overlap=16, patch_size=16, det_confidence=0.3,
        det_iou_threshold=0.3, name="ships-test", outputs=["heatmap", "size", "offset"],
    )  # fmt: skip
    values.update(overrides)
    return ModelInfo(**values)


def _save(graph: onnx.GraphProto, info: ModelInfo | None, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime 1.18+ reads
    if info is not None:
        helper.set_model_props(model, info.to_metadata_props())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _input(channels: int = 1) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, "H", "W"])


def make_seg_onnx(path: Path, info: ModelInfo | None = None, kernel: int = 5) -> Path:
    """``p(water) = sigmoid(-(blur(x) - WATER_DB) / 2)``; outputs ``[1 - p, p]``."""
    info = info or seg_info()
    k = np.full((1, 1, kernel, kernel), 1.0 / kernel**2, dtype=np.float32)
    inits = [
        numpy_helper.from_array(k, "k"),
        numpy_helper.from_array(np.array(WATER_DB, np.float32), "c"),
        numpy_helper.from_array(np.array(-0.5, np.float32), "s"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    pad = kernel // 2
    nodes = [
        helper.make_node("Conv", ["input", "k"], ["blur"], pads=[pad] * 4),  # zero padding
        helper.make_node("Sub", ["blur", "c"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2, "H", "W"])
    return _save(helper.make_graph(nodes, "water", [_input()], [out], inits), info, path)


def make_change_onnx(path: Path, info: ModelInfo) -> Path:
    """A two-date model: ``p(flood) = sigmoid(before - after - 6 dB)`` (channels before, after);
    outputs ``[1 - p, p]``."""
    inits = [
        numpy_helper.from_array(np.array([[[[1.0]], [[-1.0]]]], np.float32), "w"),  # b - a
        numpy_helper.from_array(np.array([-6.0], np.float32), "bias"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probabilities"], axis=1),
    ]
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2, "H", "W"])
    return _save(helper.make_graph(nodes, "flood", [_input(2)], [out], inits), info, path)


def make_det_onnx(path: Path, info: ModelInfo | None = None, box_px: float = 16.0) -> Path:
    """Heatmap ``sigmoid(blur3(avgpool4(x)) - 5 dB)`` at stride 4, constant boxes of ``box_px``."""
    info = info or det_info()
    inits = [
        numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, np.float32), "k"),
        numpy_helper.from_array(np.array(5.0, np.float32), "c"),
        numpy_helper.from_array(np.zeros((2, 1, 1, 1), np.float32), "w0"),
        numpy_helper.from_array(np.array([box_px, box_px], np.float32), "size_b"),
        numpy_helper.from_array(np.array([0.5, 0.5], np.float32), "off_b"),
    ]
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pool"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["pool", "k"], ["blur"], pads=[1, 1, 1, 1]),
        helper.make_node("Sub", ["blur", "c"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["heatmap"]),
        helper.make_node("Conv", ["pool", "w0", "size_b"], ["size"]),
        helper.make_node("Conv", ["pool", "w0", "off_b"], ["offset"]),
    ]
    outs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", c, "h", "w"])
        for n, c in (("heatmap", 1), ("size", 2), ("offset", 2))
    ]
    return _save(helper.make_graph(nodes, "ships", [_input()], outs, inits), info, path)


def make_foreign_onnx(path: Path) -> Path:
    """A valid ONNX model with Deepness-style metadata but no sarmae metadata."""
    node = helper.make_node("Identity", ["input"], ["output"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph([node], "foreign", [_input()], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    helper.set_model_props(model, {"model_type": "Segmentor", "class_names": '{"0": "a"}'})
    onnx.save(model, str(path))
    return path


def read(path: Path, band: int | None = 1) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return (ds.read(band) if band else ds.read()), ds.profile


def write_raster(path: Path, data: np.ndarray, **profile: Any) -> Path:
    """Write ``data`` [bands, H, W] (or [H, W]) with the fixture's georeference by default."""
    data = data[None] if data.ndim == 2 else data
    _, base = read(S1_VV_DB)
    base.update(count=data.shape[0], dtype=data.dtype.name, height=data.shape[1],
                width=data.shape[2], nodata=None)  # fmt: skip
    base.pop("blockysize", None)
    base.update(profile)
    descriptions = base.pop("descriptions", None)
    with rasterio.open(path, "w", **base) as ds:
        ds.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
    return path


def s1_db() -> np.ndarray:
    return read(S1_VV_DB)[0]


def to_epsg4326(src: Path, dst: Path) -> Path:
    """Reproject a raster to EPSG:4326 (nearest, so class areas are comparable)."""
    with rasterio.open(src) as ds:
        transform, w, h = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height,
                                                      *ds.bounds)  # fmt: skip
        profile = ds.profile | dict(crs="EPSG:4326", transform=transform, width=w, height=h)
        profile.pop("blockysize", None)
        with rasterio.open(dst, "w", **profile) as out:
            reproject(rasterio.band(ds, 1), rasterio.band(out, 1), resampling=Resampling.nearest)
    return dst


def features(path: Path) -> list[dict[str, Any]]:
    """Fields of every feature of the first layer, with ``geometry`` (a clone) and ``envelope``.

    Copies everything out so that no OGR object outlives its data source (which crashes).
    """
    from osgeo import ogr

    ogr.UseExceptions()
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    rows = []
    for f in layer:
        row = f.items()
        geom = f.GetGeometryRef()
        row["geometry"] = geom.Clone() if geom is not None else None  # None: a null geometry
        row["envelope"] = geom.GetEnvelope() if geom is not None else None
        rows.append(row)
    layer = None
    ds = None
    return rows


def layer_info(path: Path) -> tuple[str, str]:
    """(layer name, CRS WKT) of the first layer."""
    from osgeo import ogr

    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    srs = layer.GetSpatialRef()
    result = layer.GetName(), srs.ExportToWkt() if srs is not None else ""
    layer = None
    ds = None
    return result

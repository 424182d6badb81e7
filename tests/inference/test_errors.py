"""Bad input: a clear message, nothing written, nothing lost (one test per case of the issue)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from sarmae_core.errors import CancelledError, CheckpointError, ConfigError, InputError, RasterError
from sarmae_core.inference import CallableBackend, OutputExistsError, predict

from .helpers import _save, make_seg_onnx, s1_db, seg_info, write_raster


def _nothing_written(out: Path, keep: tuple[str, ...] = ()) -> None:
    """No output, no temporary file, no sidecar: only what was there before."""
    assert sorted(p.name for p in out.iterdir()) == sorted(keep)


def test_missing_file(out: Path, models) -> None:
    with pytest.raises(RasterError, match="does not exist; check the path"):
        predict(out / "nope.tif", models["water"], out / "w.tif")
    _nothing_written(out)


def test_not_a_raster(tmp_path: Path, out: Path, models) -> None:
    text = tmp_path / "notes.tif"
    text.write_text("this is not a GeoTIFF\n")
    with pytest.raises(RasterError, match="is not a raster GDAL can read"):
        predict(text, models["water"], out / "w.tif")
    _nothing_written(out)


def test_zero_size_raster(tmp_path: Path, out: Path, models) -> None:
    empty = tmp_path / "empty.tif"
    empty.touch()
    with pytest.raises(RasterError, match=r"is empty \(0 bytes\)"):
        predict(empty, models["water"], out / "w.tif")
    _nothing_written(out)


def test_all_nodata_raster(tmp_path: Path, out: Path, models) -> None:
    src = write_raster(tmp_path / "void_VV_db.tif", np.full((217, 268), -99, np.float32),
                       nodata=-99)  # fmt: skip
    with pytest.raises(InputError, match=r"has no valid pixels: every pixel is nodata \(-99\)"):
        predict(src, models["water"], out / "w.tif")
    # Valid pixels only outside the area of interest: refused after the sweep, files removed.
    x = s1_db()
    x[:, :200] = -99
    part = write_raster(tmp_path / "part_VV_db.tif", x, nodata=-99)
    with pytest.raises(InputError, match="no valid pixels in the area processed"):
        predict(part, models["water"], out / "w.tif", aoi=(620100, 4826000, 622000, 4830000))
    _nothing_written(out)


def test_optical_rgb_is_refused_unless_overridden(tmp_path: Path, out: Path, models) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (3, 217, 268), dtype=np.uint8)
    src = write_raster(tmp_path / "photo.tif", rgb, photometric="RGB")
    with pytest.raises(InputError, match="looks like an optical image"):
        predict(src, models["water"], out / "w.tif")
    _nothing_written(out)
    res = predict(src, models["water"], out / "w.tif", allow_optical=True, bands=[1], units="db")
    assert res.files["class"].exists()


def test_unknown_units(s1_db: Path, out: Path, models) -> None:
    with pytest.raises(InputError, match="unknown units 'sigma'"):
        predict(s1_db, models["water"], out / "w.tif", units="sigma")
    _nothing_written(out)


def test_corrupt_onnx(tmp_path: Path, s1_db: Path, out: Path, models) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(models["water"].read_bytes()[:300])
    for bad in (garbage, truncated):
        with pytest.raises(CheckpointError, match="is not a usable ONNX model"):
            predict(s1_db, bad, out / "w.tif")
    _nothing_written(out)


def test_foreign_onnx(tmp_path: Path, s1_db: Path, out: Path) -> None:
    from .helpers import make_foreign_onnx

    with pytest.raises(CheckpointError, match=r"not a sarmae model \(it looks like a Segmentor"):
        predict(s1_db, make_foreign_onnx(tmp_path / "deepness.onnx"), out / "w.tif")
    _nothing_written(out)


def test_bundled_model_missing(s1_db: Path, out: Path) -> None:
    with pytest.raises(CheckpointError, match="no bundled model named 'glaciers'"):
        predict(s1_db, "glaciers", out / "w.tif")
    with pytest.raises(CheckpointError, match="does not exist"):
        predict(s1_db, out / "missing.onnx", out / "w.tif")
    _nothing_written(out)


def test_classification_model_for_water(tmp_path: Path, s1_db: Path, out: Path) -> None:
    pool = helper.make_node("GlobalAveragePool", ["input"], ["pooled"])
    flat = helper.make_node("Flatten", ["pooled"], ["flat"])
    soft = helper.make_node("Softmax", ["flat"], ["probabilities"], axis=1)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"])
    outp = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph([pool, flat, soft], "cls", [inp], [outp])
    info = seg_info(task="classification", class_names=["sea"])
    model = _save(graph, info, tmp_path / "classifier.onnx")
    with pytest.raises(ConfigError, match="is a classification model"):
        predict(s1_db, model, out / "w.tif", job="water")
    with pytest.raises(ConfigError, match="is a segmentation model, but predicting ships"):
        predict(s1_db, make_seg_onnx(tmp_path / "seg.onnx"), out / "s.gpkg", job="ships")
    assert isinstance(onnx.load(str(model)), onnx.ModelProto)
    _nothing_written(out)


def test_output_folder_not_writable(s1_db: Path, out: Path, models) -> None:
    with pytest.raises(RasterError, match="is not writable"):
        predict(s1_db, models["water"], Path("/proc/w.tif"))
    with pytest.raises(RasterError, match="does not exist; create it first"):
        predict(s1_db, models["water"], out / "missing" / "w.tif")
    _nothing_written(out)


def test_output_exists_is_kept_unless_overwrite(s1_db: Path, out: Path, models) -> None:
    target = out / "w.tif"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        predict(s1_db, models["water"], target)
    assert target.read_bytes() == b"precious"
    _nothing_written(out, ("w.tif",))
    assert isinstance(OutputExistsError("x"), FileExistsError)
    predict(s1_db, models["water"], target, overwrite=True)
    assert target.read_bytes()[:2] in (b"II", b"MM")  # now a TIFF
    _nothing_written(out, ("w.tif",))


def test_cancellation_mid_run_leaves_nothing(s1_db: Path, out: Path, models) -> None:
    cancel = threading.Event()
    seen: list[float] = []

    def progress(percent: float) -> None:
        seen.append(percent)
        if percent > 30:
            cancel.set()

    with pytest.raises(CancelledError, match="cancelled"):
        predict(s1_db, models["water"], out / "w.tif", products=("class", "probability", "vector"),
                batch_size=2, progress=progress, cancel=cancel)  # fmt: skip
    assert 30 < max(seen) < 90  # it really stopped in the middle of the sweep
    _nothing_written(out)
    # A callable works too (QgsTask.isCanceled), and so does a failure inside the model.
    with pytest.raises(CancelledError):
        predict(s1_db, models["water"], out / "w.gpkg", cancel=lambda: True)

    def broken(batch: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        predict(s1_db, CallableBackend(broken, seg_info()), out / "w.tif")
    _nothing_written(out)


def test_cancellation_while_vectorising_leaves_nothing(s1_db: Path, out: Path, models) -> None:
    cancel = threading.Event()

    def progress(percent: float) -> None:
        if percent >= 92:  # the sweep is done: polygons are being traced
            cancel.set()

    with pytest.raises(CancelledError):
        predict(s1_db, models["water"], out / "w.gpkg", progress=progress, cancel=cancel)
    assert cancel.is_set()
    _nothing_written(out)

"""`sarmae predict` and `sarmae export` as a user runs them: real scene, real ONNX runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio
from PIL import Image

from sarmae_core.contract.reader import read_model_info
from sarmae_core.models.heads import SegmentationModel
from sarmae_core.models.registry import make_config

from ..conftest import S1_VV_DB


def sarmae(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sarmae_core.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_water_onnx(tmp_path_factory):
    """A small segmentation model exported through the CLI (random weights: wiring only)."""
    from sarmae_core.models.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("model")
    config = make_config("sarmae_test")
    config.data.resolution = 20.0  # the scene's pixel size: no resampling in these tests
    model = SegmentationModel(config, class_names=["background", "water"])
    ckpt = save_checkpoint(model, folder / "water.safetensors")
    onnx = folder / "water.onnx"
    r = sarmae("export", str(ckpt), "-o", str(onnx), "--name", "water", "--tile", "64")
    assert r.returncode == 0, r.stderr
    assert "parity torch vs onnxruntime: max abs diff" in r.stdout
    diff = float(r.stdout.rsplit("max abs diff", 1)[1])
    assert diff <= 1e-4
    return onnx


def test_export_writes_metadata_and_refuses_to_overwrite(tiny_water_onnx):
    info = read_model_info(tiny_water_onnx)
    assert info.task == "segmentation" and info.name == "water" and info.tile_size == 64
    before = tiny_water_onnx.read_bytes()
    r = sarmae("export", str(tiny_water_onnx.with_suffix(".safetensors")), "-o",
               str(tiny_water_onnx))  # fmt: skip
    assert r.returncode == 2 and "exists" in r.stderr and "overwrite" in r.stderr
    assert tiny_water_onnx.read_bytes() == before


@pytest.mark.parametrize("io", ["gdal", "rasterio"])
def test_predict_water_writes_polygons_mask_and_quicklook(
    tmp_path, tiny_water_onnx, io, monkeypatch
):
    monkeypatch.setenv("SARMAE_IO", io)  # the IO backend the command uses
    out = tmp_path / "water.gpkg"
    mask, png = tmp_path / "mask.tif", tmp_path / "quicklook.png"
    args = ["predict", "water", str(S1_VV_DB), "-o", str(out), "--raster", str(mask),
            "--quicklook", str(png), "--model", str(tiny_water_onnx)]  # fmt: skip
    r = sarmae(*args)
    assert r.returncode == 0, r.stderr
    assert "water area:" in r.stdout and str(png) in r.stdout
    with rasterio.open(S1_VV_DB) as src, rasterio.open(mask) as m:
        assert m.crs == src.crs and m.transform == src.transform
        assert (m.width, m.height) == (src.width, src.height)
    assert out.stat().st_size > 0
    img = np.asarray(Image.open(png))
    assert img.shape == (4 * 217, 4 * 268, 3)  # a small scene is shown enlarged 4x
    # second run: outputs exist, nothing is replaced without --overwrite
    stamp = mask.stat().st_mtime_ns
    r = sarmae(*args)
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr
    assert mask.stat().st_mtime_ns == stamp


def test_predict_water_quicklook_shows_the_bundled_models_water(tmp_path):
    png = tmp_path / "q.png"
    r = sarmae("predict", "water", str(S1_VV_DB), "-o", str(tmp_path / "w.gpkg"),
               "--raster", str(tmp_path / "w.tif"), "--quicklook", str(png))  # fmt: skip
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "w.tif") as m:
        water = m.read(1) == 1
    # the Camargue scene holds marshes and ponds: some water, far from all of it
    assert 0.03 < water.mean() < 0.6
    img = np.asarray(Image.open(png)).astype(int)
    outline = (img[..., 0] == 0) & (img[..., 1] == 235) & (img[..., 2] == 255)
    assert outline.sum() > 50


def test_predict_errors_are_clear(tmp_path, tiny_water_onnx):
    r = sarmae("predict", "water", str(tmp_path / "nope.tif"), "--model", str(tiny_water_onnx))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = sarmae("predict", "water", str(S1_VV_DB), "-o", str(tmp_path / "w.shp"))
    assert r.returncode == 2 and ".gpkg" in r.stderr
    assert list(tmp_path.iterdir()) == []

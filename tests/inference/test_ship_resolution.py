"""A ship model knows its pixel sizes (issue 11): inside its range a scene is read as it is,
finer pixels are averaged into it, and much coarser ones (Sentinel-1 IW GRD at 10-20 m for a
0.5-3 m model) are refused with a message that says what to use instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

from sarmae_core.errors import InputError
from sarmae_core.inference import predict
from sarmae_core.inference.scene.source import resolution_refusal, trained_for

from .helpers import det_info, make_det_onnx, s1_db, seg_info, write_raster

#: what HRSID (Sentinel-1 SM, TerraSAR-X, TanDEM-X) holds, as the bundled ships model declares
RANGE = [0.5, 3.0]


@pytest.fixture(scope="module")
def hr_ships(tmp_path_factory) -> Path:
    info = det_info(resolution_m=None, resolution_range_m=RANGE, name="ships-hr")
    return make_det_onnx(tmp_path_factory.mktemp("m") / "ships_hr.onnx", info)


def scene(tmp_path: Path, pixel_m: float, name: str) -> Path:
    """The real S1 scene's values with its georeference at another pixel size, with a
    bright 16 px vessel."""
    db = s1_db()
    db[100:116, 48:64] = 10.0
    transform = rasterio.transform.from_origin(620_000.0, 4_834_000.0, pixel_m, pixel_m)
    return write_raster(tmp_path / name, db, transform=transform)


@pytest.mark.parametrize("pixel_m", [10.0, 20.0])
def test_sentinel1_grd_pixels_are_refused_for_a_high_resolution_ship_model(
    hr_ships, tmp_path, out, pixel_m
):
    tif = scene(tmp_path, pixel_m, f"s1_{pixel_m:g}m_VV_db.tif")
    with pytest.raises(InputError) as err:
        predict(tif, hr_ships, out / "ships.gpkg")
    text = str(err.value)
    assert "this model is for 0.5-3 m pixels" in text and f"{pixel_m:g} x {pixel_m:g} m" in text
    assert "cfar" in text.lower() and "\n" not in text
    assert not any(out.iterdir())  # nothing written
    # the user may insist, with the tolerance the message names: run on the scene's own grid
    need = float(text.rsplit("resolution_tolerance=", 1)[1].split()[0])
    res = predict(tif, hr_ships, out / "ships.gpkg", resolution_tolerance=need + 0.01)
    assert res.summary.ship_count >= 1


def test_pixels_inside_the_range_are_read_as_they_are_and_finer_ones_averaged(
    hr_ships, tmp_path, out
):
    inside = predict(scene(tmp_path, 2.0, "two_m.tif"), hr_ships, out / "a.gpkg")
    assert not any("resampled" in str(n) for n in inside.notes)
    assert inside.summary.pixels_processed == 217 * 268 and inside.summary.ship_count >= 1
    fine = predict(scene(tmp_path, 0.25, "quarter_m.tif"), hr_ships, out / "b.gpkg")
    (note,) = [str(n) for n in fine.notes if "resampled" in str(n)]
    assert "0.5-3 m pixels" in note
    assert fine.summary.pixels_processed == pytest.approx(217 * 268 / 4, rel=0.02)


def test_only_detection_models_with_a_range_refuse():
    assert trained_for(det_info(resolution_m=None, resolution_range_m=RANGE)) == "0.5-3 m pixels"
    ranged = det_info(resolution_m=None, resolution_range_m=RANGE)
    assert resolution_refusal(10.0, 10.0, ranged) is not None
    assert resolution_refusal(3.7, 3.7, ranged) is None  # within the 25 % tolerance
    assert resolution_refusal(10.0, 10.0, det_info(resolution_m=None)) is None  # states none
    water = seg_info(resolution_m=20.0, resolution_range_m=[10.0, 20.0])
    assert resolution_refusal(60.0, 60.0, water) is None  # water is resampled, not refused


def test_cli_refusal_is_one_line_exit_2(hr_ships, tmp_path, io_backend):
    if io_backend != "gdal":
        pytest.skip("the CLI is run once")
    tif = scene(tmp_path, 10.0, "s1_10m_VV_db.tif")
    gpkg = tmp_path / "s.gpkg"
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "ships", str(tif), "--model",
           str(hr_ships), "-q", "-o", str(gpkg)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "this model is for 0.5-3 m pixels" in r.stderr and not gpkg.exists()

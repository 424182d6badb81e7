"""The README's main job, `make demo`, run as written: the bundled Water model on the real
Sentinel-1 scene of the repository, its three products and the water area it prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_maps_water_on_the_committed_scene():
    assert "make demo" in (ROOT / "README.md").read_text()
    if shutil.which("make") is None:
        raise AssertionError("make is part of the README's two commands; install it (apt)")
    r = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = ROOT / "out" / "demo"
    area = re.search(r"water area: ([0-9.]+) km2", r.stdout + r.stderr)
    assert area, r.stdout[-2000:]
    # the Camargue scene (5.8 x 4.3 km) holds ponds and lagoons: a few km2 of open water
    assert 2.0 < float(area.group(1)) < 12.0
    with (
        rasterio.open(out / "water_mask.tif") as mask,
        rasterio.open(
            ROOT / "tests/fixtures/s1_vv_db/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"
        ) as scene,
    ):
        assert (mask.width, mask.height, mask.crs) == (scene.width, scene.height, scene.crs)
    assert (out / "water.gpkg").stat().st_size > 0
    assert (out / "water_quicklook.png").read_bytes()[:4] == b"\x89PNG"


def test_make_demo_flood_maps_new_flood_on_the_committed_ombria_pair():
    """The README's flood command: the bundled Flood model on four held-out OMBRIA pairs."""
    assert "make demo-flood" in (ROOT / "README.md").read_text()
    r = subprocess.run(["make", "demo-flood"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = ROOT / "out" / "flood_demo"
    iou = re.search(r"flood IoU against the Copernicus EMS mask: ([0-9.]+) % \(Otsu on each "
                    r"after chip: ([0-9.]+) %\)", r.stdout)  # fmt: skip
    assert iou, r.stdout[-2000:]
    # what the README says of these four chips: the model 49.0, Otsu 61.0
    assert float(iou.group(1)) == pytest.approx(49.0, abs=1.0)
    assert float(iou.group(2)) == pytest.approx(61.0, abs=0.1)
    area = re.search(r"flood area: ([0-9.]+) km2", r.stdout)
    assert area and 3.0 < float(area.group(1)) < 26.2  # of the mosaic's 26.2 km2
    pair = ROOT / "tests/fixtures/ombria_flood_pair"
    with rasterio.open(out / "flood.tif") as m, rasterio.open(pair / "after_VV_db.tif") as a:
        assert (m.width, m.height, m.crs, m.transform) == (a.width, a.height, a.crs, a.transform)
    with rasterio.open(out / "flood_likelihood.tif") as lk:
        assert lk.read(1).max() <= 100
    assert (out / "flood_quicklook.png").read_bytes()[:4] == b"\x89PNG"

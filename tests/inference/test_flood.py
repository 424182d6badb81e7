"""Flood as change through ``predict``: a two-date model gets the after scene and the before
scene read on the after's grid (real Sentinel-1 GeoTIFFs, the before in another CRS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from sarmae_core.errors import ConfigError, InputError
from sarmae_core.inference import CallableBackend, predict

from .helpers import features, make_change_onnx, read, seg_info, to_epsg4326, write_raster
from .helpers import s1_db as scene_db

#: The flooded field: after the event it is as dark as open water.
FLOOD = (slice(60, 120), slice(80, 180))


def two_date_info():
    return seg_info(class_names=["background", "flood"], polarisations=["VV", "VV"],
                    dates=["before", "after"], resolution_m=20.0,
                    normalization={"mean": [-12.0, -12.0], "std": [5.0, 5.0]})  # fmt: skip


def change_model(seen: list | None = None) -> CallableBackend:
    """Flood where the after scene is at least 6 dB darker than the before scene."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        assert batch.shape[1] == 2 and np.isfinite(batch).all()
        if seen is not None:
            seen.append(batch)
        before, after = batch[:, 0], batch[:, 1]
        p = 1 / (1 + np.exp(-(before - after - 6.0)))
        return {"probabilities": np.stack([1 - p, p], axis=1).astype(np.float32)}

    return CallableBackend(run, two_date_info(), name="change")


@pytest.fixture
def pair(tmp_path: Path, s1_db: Path) -> tuple[Path, Path]:
    x = scene_db()
    x[FLOOD] = -25.0
    after = write_raster(tmp_path / "after_db.tif", x)
    before = to_epsg4326(s1_db, tmp_path / "before_4326_db.tif")  # another grid and CRS
    return after, before


def test_flood_is_where_the_after_scene_darkened(pair, out: Path) -> None:
    after, before = pair
    res = predict(after, change_model(), {"vector": out / "flood.gpkg", "class": out / "f.tif"},
                  before=before, job="flood")  # fmt: skip
    classes, _ = read(res.files["class"])
    # New water only: parts of the field that were already water before (Camargue lagoons,
    # darker than -19 dB) are not flood.
    new = scene_db()[FLOOD] > -19.0
    assert 0.2 < new.mean() < 0.9  # the field holds both
    inside = classes[FLOOD] == 1
    assert inside[new].mean() > 0.9 and inside[~new].mean() < 0.2
    outside = np.ones(classes.shape, bool)
    outside[FLOOD] = False
    assert (classes[outside & (classes != 255)] == 1).mean() < 0.02
    area = sum(r["area_m2"] for r in features(res.files["vector"]))
    assert area / 1e6 == pytest.approx(res.summary.class_area_km2["flood"], rel=1e-6)
    assert area == pytest.approx((classes == 1).sum() * 400, rel=2e-3)  # 20 m pixels
    with rasterio.open(res.files["class"]) as c, rasterio.open(after) as a:
        assert (c.crs, c.transform, c.shape) == (a.crs, a.transform, a.shape)  # the after's grid
    from osgeo import ogr

    ds = ogr.Open(str(res.files["vector"]))
    assert ds.GetLayer(0).GetName() == "flood"
    ds = None


def test_the_model_gets_before_then_after_on_one_grid(pair, s1_db: Path, out: Path) -> None:
    after, _ = pair
    seen: list[np.ndarray] = []
    # the before scene on the after's own grid: channel 0 must be it, unchanged
    predict(after, change_model(seen), out / "f.tif", before=s1_db, job="flood")
    batch = np.concatenate(seen)
    assert (batch[:, 1] <= -24.9).any() and not (batch[:, 0] <= -24.9).all()
    assert np.abs(batch[:, 0] - batch[:, 1]).max() > 10  # the flooded field differs


def test_bad_pairs_are_one_clear_error_and_nothing_is_written(
    pair, tmp_path: Path, s1_db: Path, out: Path, models
) -> None:
    after, before = pair
    with pytest.raises(ConfigError, match="give the scene before the event"):
        predict(after, change_model(), out / "f.gpkg")
    with pytest.raises(ConfigError, match="maps one date; before= is for a two-date"):
        predict(after, models["water"], out / "f.gpkg", before=before)
    with pytest.raises(ConfigError, match="flood needs what was there before the event"):
        predict(after, models["water"], out / "f.gpkg", job="flood")
    with pytest.raises(ConfigError, match="before and after are the same file"):
        predict(after, change_model(), out / "f.gpkg", before=after)
    with rasterio.open(s1_db) as ds:
        t = ds.transform
        moved = rasterio.Affine(t.a, t.b, t.c + 1e6, t.d, t.e, t.f)
        far = write_raster(tmp_path / "far_db.tif", scene_db(), transform=moved)
    with pytest.raises(InputError, match="does not overlap the scene it is paired with"):
        predict(after, change_model(), out / "f.gpkg", before=far)
    assert list(out.iterdir()) == []


def test_cli_maps_flood_from_a_pair_with_an_onnx_model(pair, tmp_path: Path, out: Path) -> None:
    import subprocess
    import sys

    after, before = pair
    model = make_change_onnx(tmp_path / "change.onnx", two_date_info())
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "flood", str(after), "--before",
           str(before), "--model", str(model), "-o", str(out / "flood.gpkg"), "--raster",
           str(out / "flood.tif"), "-q"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    classes, _ = read(out / "flood.tif")
    assert (classes[FLOOD] == 1).mean() > 0.2 and (classes == 1).mean() < 0.1
    assert "flood" in r.stdout
    no_before = [c for c in cmd if c not in ("--before", str(before))]
    r = subprocess.run(no_before, capture_output=True, text=True)
    assert r.returncode == 2 and "flood needs what was there before the event" in r.stderr
    assert "--reference-water" in r.stderr  # the other way to say it


PAIR = Path(__file__).parents[1] / "fixtures" / "s1_pair_punjab"
JUNE = PAIR / "S1A_20200607_descending_VV_db.tif"
SEPTEMBER = PAIR / "S1A_20200903_ascending_VV_db.tif"


def test_a_real_pair_from_two_orbits_is_mapped_and_the_notes_say_so(out: Path) -> None:
    res = predict(SEPTEMBER, change_model(), out / "f.gpkg", before=JUNE, job="flood")
    assert any("different orbit directions (before DESCENDING, after ASCENDING)" in n
               for n in res.notes)  # fmt: skip
    assert not any("swapped" in n for n in res.notes)
    assert res.crs == "EPSG:4326" and res.summary.pixels_processed > 0
    swapped = predict(JUNE, change_model(), out / "g.gpkg", before=SEPTEMBER, job="flood")
    assert any("(2020-09-03) was acquired after the after scene (2020-06-07)" in n
               for n in swapped.notes)  # fmt: skip


def test_flood_quicklook_shows_before_after_and_flood(pair, out: Path) -> None:
    from PIL import Image

    after, before = pair
    res = predict(after, change_model(), {"vector": out / "f.gpkg", "class": out / "f.tif"},
                  before=before, job="flood", quicklook=out / "q.png")  # fmt: skip
    img = np.asarray(Image.open(res.files["quicklook"]).convert("RGB")).astype(int)
    with rasterio.open(after) as a:
        h, w = a.height, a.width
    panel = round(w * img.shape[0] / h)
    assert abs(img.shape[1] - (3 * panel + 16)) <= 3  # before | after | flood, 8 px gaps

    def reddish(x: np.ndarray) -> np.ndarray:  # the flood fill and outline over grey SAR
        return (x[..., 0] - x[..., 2] > 60) & (x[..., 0] - x[..., 1] > 30)

    assert reddish(img[:, 2 * (panel + 8) :]).mean() > 0.01
    assert not reddish(img[:, :panel]).any() and not reddish(img[:, panel + 8 : 2 * panel]).any()


def test_pairs_of_other_bands_and_polarisations(tmp_path: Path, out: Path) -> None:
    """A VV+VH after scene with a VV before scene maps (VV of each date); a before scene
    without VV is one error naming it, and nothing is written."""
    x = scene_db()
    x[FLOOD] = -25.0
    after = write_raster(tmp_path / "after_vvvh_db.tif", np.stack([x, x - 7.0]),
                         descriptions=["VV", "VH"])  # fmt: skip
    before_vv = write_raster(tmp_path / "before_vv_db.tif", scene_db(), descriptions=["VV"])
    before_vh = write_raster(tmp_path / "before_vh_db.tif", scene_db() - 7.0,
                             descriptions=["VH"])  # fmt: skip
    res = predict(after, change_model(), out / "f.tif", before=before_vv, job="flood")
    classes, _ = read(res.files["class"])
    assert (classes[FLOOD] == 1).mean() > 0.2 and (classes == 1).mean() < 0.1
    res.files["class"].unlink()
    with pytest.raises(InputError, match=r"before scene before_vh_db\.tif: the model needs "
                                         r"bands VV but the raster has \[1: VH\]"):  # fmt: skip
        predict(after, change_model(), out / "g.tif", before=before_vh, job="flood")
    assert list(out.iterdir()) == []

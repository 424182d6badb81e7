"""CA-CFAR ship detection (``predict(model="cfar")``, ``sarmae predict ships --detector cfar``)
on real HRSID tiles written as GeoTIFFs and on the real Sentinel-1 scene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from sarmae_core.errors import ConfigError
from sarmae_core.inference import CfarDetector, CfarParams, predict
from sarmae_core.inference.model.cfar import cfar_mask, label_components
from sarmae_core.inference.products.quicklook import boxes_from_gpkg

from ..conftest import SHARED_DATA
from .helpers import features, s1_db, write_raster

HRSID = SHARED_DATA / "hrsid_mini" / "mini_test"
#: offshore, held out: two long ships (85 and 71 px); truth boxes from the ship mask
OFFSHORE = "P0007_3000_3800_1800_2600"
OFFSHORE_SHIPS = [(449, 19, 534, 37), (511, 603, 582, 623)]
#: inshore: a 26 px ship on a river between bright fields and a harbour
INSHORE = "P0001_1200_2000_9600_10400"
INSHORE_SHIP = (592, 304, 615, 330)
#: the river, in pixels of the tile (x, y), drawn over the tile by eye
RIVER = [(410, 0), (505, 0), (790, 560), (790, 740)]

needs_hrsid = pytest.mark.skipif(not HRSID.is_dir(), reason=f"HRSID mini not in {SHARED_DATA}")


def hrsid_geotiff(stem: str, folder: Path, pixel_m: float = 1.0) -> Path:
    """An HRSID tile as amplitude (DN / 255) GeoTIFF, band VV, placed in UTM 51N (HRSID tiles
    carry no georeference)."""
    grey = np.asarray(Image.open(HRSID / "images" / f"{stem}.jpg").convert("L"), np.float32)
    path = folder / f"{stem}.tif"
    transform = rasterio.transform.from_origin(350_000.0, 3_460_000.0, pixel_m, pixel_m)
    profile = dict(driver="GTiff", width=grey.shape[1], height=grey.shape[0], count=1,
                   dtype="float32", crs="EPSG:32651", transform=transform)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(grey / 255.0, 1)
        dst.set_band_description(1, "VV")
    return path


def covers(box, truth, share: float = 0.9) -> bool:
    """Whether ``box`` holds at least ``share`` of the ``truth`` box (a whole hull)."""
    ix = max(0.0, min(box[2], truth[2]) - max(box[0], truth[0]))
    iy = max(0.0, min(box[3], truth[3]) - max(box[1], truth[1]))
    return ix * iy >= share * (truth[2] - truth[0]) * (truth[3] - truth[1])


# ------------------------------------------------------------------------------ the detector
@pytest.mark.parametrize("looks", [1.0, 4.0])
def test_threshold_gives_the_stated_false_alarm_rate_on_its_clutter_model(looks):
    """Speckle of the stated model (gamma intensity, L looks): the share of pixels detected
    is the PFA; a detector with the threshold of the wrong model is far off."""
    rng = np.random.default_rng(1)
    params = CfarParams(pfa=1e-3, looks=looks)
    clutter = rng.gamma(looks, 1.0 / looks, size=(1024, 1024)) * 0.05  # any sigma0 scale
    detected, _ = cfar_mask(clutter, params)
    assert 0.7e-3 < detected.mean() < 1.4e-3
    if looks > 1:  # exponential thresholds on 4-look data: ~100x fewer false alarms
        assert cfar_mask(clutter, CfarParams(pfa=1e-3))[0].mean() < 1e-4


def test_a_hull_longer_than_the_guard_window_is_one_target():
    """Without censoring, a 200 px hull raises its own background and only its ends are
    detected; with it the hull is one target with one box."""
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, (512, 512))
    x[200:210, 100:300] += 50.0
    det = CfarDetector().run(x[None, None])["detections"][0]
    det = det[np.isfinite(det).all(axis=1)]
    hull = [d for d in det if d[0] <= 101 and d[2] >= 299]
    assert len(hull) == 1 and 196 <= hull[0][1] <= 200 and 210 <= hull[0][3] <= 214
    assert det[0][4] == det[:, 4].max() and covers(det[0], (100, 200, 300, 210))


def test_components_are_those_of_an_independent_labeller():
    from skimage.measure import label

    rng = np.random.default_rng(3)
    for density in (0.05, 0.3, 0.6):
        mask = rng.random((120, 90)) < density
        ours, n = label_components(mask)
        theirs = label(mask, connectivity=2)
        assert n == theirs.max()
        pairs = np.unique(np.stack([ours[mask], theirs[mask]]), axis=1)
        assert pairs.shape[1] == n  # one to one


def test_parameters_are_checked_with_a_message():
    with pytest.raises(ConfigError, match="odd"):
        CfarParams(guard=14)
    with pytest.raises(ConfigError, match="exceed the guard"):
        CfarParams(guard=15, background=17)
    with pytest.raises(ConfigError, match="pfa"):
        CfarParams(pfa=0.0)


# ------------------------------------------------------------------------- through predict
@needs_hrsid
def test_cfar_finds_each_long_ship_of_a_real_offshore_tile_once(tmp_path, out):
    tif = hrsid_geotiff(OFFSHORE, tmp_path)
    res = predict(tif, "cfar", out / "cfar.gpkg", units="amplitude")
    assert res.backend == "cfar" and res.task == "detection"
    boxes = boxes_from_gpkg(res.files["vector"], tif)
    feats = sorted(features(res.files["vector"]), key=lambda f: -f["score"])
    assert len(boxes) == res.summary.ship_count == len(feats) > 2
    for ship in OFFSHORE_SHIPS:
        assert sum(covers(b, ship) for b in boxes) == 1  # the whole hull, in one box
    # the two ships are the two strongest targets; the rest is speckle at the stated PFA
    top = feats[:2]
    assert all(f["score"] > 0.9 for f in top) and feats[2]["score"] < 0.6
    assert all(60 < f["length_m"] < 120 for f in top)  # 1 m pixels: 71-85 m hulls
    assert all(f["length_m"] < 10 for f in feats[2:])
    # a minimum area in m2 drops the speckle and keeps the ships
    big = predict(tif, CfarDetector(CfarParams(min_area_m2=200.0)), out / "big.gpkg",
                  units="amplitude")  # fmt: skip
    kept = boxes_from_gpkg(big.files["vector"], tif)
    assert big.summary.ship_count < res.summary.ship_count
    assert all(sum(covers(b, ship) for b in kept) == 1 for ship in OFFSHORE_SHIPS)


@needs_hrsid
def test_land_is_masked_by_a_sea_polygon(tmp_path, out):
    """Inshore: CFAR on the whole tile reports the bright fields and harbour as hundreds of
    ships; with the river as the area of interest, only the river is searched."""
    tif = hrsid_geotiff(INSHORE, tmp_path)
    every = predict(tif, "cfar", out / "all.gpkg", units="amplitude")
    river = {
        "type": "Polygon",
        "coordinates": [[(350_000.0 + x, 3_460_000.0 - y) for x, y in RIVER + RIVER[:1]]],
    }
    res = predict(tif, "cfar", out / "river.gpkg", units="amplitude", aoi=river)  # fmt: skip
    boxes = boxes_from_gpkg(res.files["vector"], tif)
    assert every.summary.ship_count > 100 and res.summary.ship_count < every.summary.ship_count / 4
    assert sum(covers(b, INSHORE_SHIP, 0.8) for b in boxes) == 1
    best = max(features(res.files["vector"]), key=lambda f: f["score"])
    assert 20 < best["length_m"] < 30  # the ship is the strongest target on the river
    from matplotlib.path import Path as Ring

    ring = Ring(RIVER)
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes]
    assert ring.contains_points(centres, radius=1.0).all()


def test_cfar_on_the_real_sentinel1_scene_in_db(tmp_path, out):
    """The real S1 scene (dB, 20 m): CFAR gets intensity from the engine's unit rule and finds
    a bright 3 x 12 px vessel put on its darkest water."""
    db = s1_db()
    win = np.lib.stride_tricks.sliding_window_view(db, (20, 20))[::4, ::4].mean(axis=(2, 3))
    r, c = np.unravel_index(np.argmin(win), win.shape)
    r, c = 4 * r + 4, 4 * c + 2
    db[r : r + 3, c : c + 12] = db.max() + 10.0
    tif = write_raster(tmp_path / "s1_VV_db.tif", db)
    res = predict(tif, "cfar", out / "s1.gpkg")
    assert res.units == "db"
    boxes = boxes_from_gpkg(res.files["vector"], tif)
    assert sum(covers(b, (c, r, c + 12, r + 3)) for b in boxes) == 1


# ---------------------------------------------------------------------------------- the CLI
def sarmae(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sarmae_core.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@needs_hrsid
def test_cli_detector_cfar(tmp_path, io_backend):
    if io_backend != "gdal":
        pytest.skip("the CLI is run once")
    tif = hrsid_geotiff(OFFSHORE, tmp_path)
    gpkg = tmp_path / "ships.gpkg"
    r = sarmae("predict", "ships", str(tif), "--detector", "cfar", "--units", "amplitude",
               "--min-area", "200", "-q", "-o", str(gpkg))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert gpkg.is_file() and "ships" in r.stdout
    # bad windows and a model given with CFAR: one line, exit 2, nothing written
    for extra in (["--guard", "14"], ["--model", "ships"]):
        bad = tmp_path / "bad.gpkg"
        r = sarmae("predict", "ships", str(tif), "--detector", "cfar", "-q", "-o", str(bad),
                   *extra)  # fmt: skip
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr and not bad.exists()


# ------------------------------------------------------------------- one box across tiles
@needs_hrsid
def test_a_ship_longer_than_a_tile_is_one_box(tmp_path, out, monkeypatch):
    """A 420 x 14 px hull, bright on the real sea of the offshore tile, crosses two tile
    borders (tiles of 192 px): each tile sees a piece, and the pieces become one box over the
    whole hull. Without joining pieces (across tile edges, and overlapping ones on one line)
    the same run gives several boxes."""
    grey = np.asarray(Image.open(HRSID / "images" / f"{OFFSHORE}.jpg").convert("L"), np.float32)
    amp = grey / 255.0
    r0, c0 = 300, 150  # open sea, clear of the two real ships
    amp[r0 : r0 + 14, c0 : c0 + 420] = 0.9 + 0.05 * np.sin(np.arange(420) / 3.0)
    tif = hrsid_geotiff(OFFSHORE, tmp_path)
    with rasterio.open(tif, "r+") as ds:
        ds.write(amp, 1)
    hull = (c0, r0, c0 + 420, r0 + 14)
    detector = CfarDetector(CfarParams(min_area_m2=200.0), tile=192)
    res = predict(tif, detector, out / "long.gpkg", units="amplitude", tile=192, overlap=32)
    boxes = boxes_from_gpkg(res.files["vector"], tif)
    on_hull = [b for b in boxes if covers(hull, b, 0.5)]  # boxes mostly on the hull
    assert len(on_hull) == 1 and covers(on_hull[0], hull, 0.98)
    assert all(sum(covers(b, ship) for b in boxes) == 1 for ship in OFFSHORE_SHIPS)

    from sarmae_core.inference.sweep import engine

    monkeypatch.setattr(engine, "merge_cut_boxes", lambda dets, cuts: dets)
    monkeypatch.setattr(engine, "merge_fragments", lambda dets: dets)
    split = predict(tif, detector, out / "split.gpkg", units="amplitude", tile=192, overlap=32)
    pieces = [b for b in boxes_from_gpkg(split.files["vector"], tif) if covers(hull, b, 0.5)]
    assert len(pieces) >= 3 and not any(covers(b, hull, 0.98) for b in pieces)


@needs_hrsid
def test_real_ships_cut_by_small_tiles_come_out_whole(tmp_path, out):
    """The real offshore tile in 128 px tiles with 16 px overlap: its 71 and 85 px ships are
    cut by tile borders, and each still comes out as one box over its whole hull, within the
    box a single 1024 px tile gives."""
    tif = hrsid_geotiff(OFFSHORE, tmp_path)
    params = CfarParams(min_area_m2=200.0)
    whole = predict(tif, CfarDetector(params, tile=1024), out / "whole.gpkg", units="amplitude")
    small = predict(tif, CfarDetector(params, tile=256), out / "small.gpkg", units="amplitude",
                    tile=128, overlap=16)  # fmt: skip
    assert small.summary.tiles > 40
    ref = boxes_from_gpkg(whole.files["vector"], tif)
    got = boxes_from_gpkg(small.files["vector"], tif)
    for ship in OFFSHORE_SHIPS:
        (a,) = [b for b in ref if covers(b, ship)]
        (b,) = [b for b in got if covers(b, ship)]
        # one box over the whole hull, inside the one-tile box (mirrored borders give CFAR
        # slightly different backgrounds near tile edges, so faint ends may differ)
        assert (b[:2] >= a[:2] - 3).all() and (b[2:] <= a[2:] + 3).all()


def test_merging_joins_pieces_across_an_edge_but_not_neighbours():
    from sarmae_core.inference.model.detection import Detections, cut_edges, merge_cut_boxes

    # tile A = columns 0-127, tile B = columns 96-223 of a 64 x 400 px raster
    left = np.array([[60.0, 20.0, 128.0, 30.0]])  # a hull cut by A's right edge
    right = np.array(
        [
            [96.0, 22.0, 180.0, 31.0],  # its rest, as B saw it
            [140.0, 40.0, 170.0, 50.0],
        ]
    )  # a ship beside it, not touching
    cuts = np.concatenate([cut_edges(left, (0, 0, 64, 128), (64, 400), 4.0),
                           cut_edges(right, (0, 96, 64, 128), (64, 400), 4.0)])  # fmt: skip
    assert np.isfinite(cuts[0]).tolist() == [False, False, True, False]
    assert np.isfinite(cuts[1]).tolist() == [True, False, False, False]  # B's left edge, 96
    assert not np.isfinite(cuts[2]).any()
    dets = Detections(np.concatenate([left, right]), np.array([0.9, 0.6, 0.8], np.float32),
                      np.zeros(3, np.int64))  # fmt: skip
    merged = merge_cut_boxes(dets, cuts)
    assert len(merged) == 2
    np.testing.assert_allclose(merged.boxes[0], [60, 20, 180, 31])
    assert merged.scores[0] == pytest.approx(0.9)

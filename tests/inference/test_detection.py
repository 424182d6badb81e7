"""Ship detection end to end: one feature per ship, also on tile borders; sizes in metres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarmae_core.inference import predict
from sarmae_core.inference.model.detection import Detections, decode_centernet, nms
from sarmae_core.inference.sweep.windows import TileGrid

from .helpers import features, s1_db, write_raster

# Two 16 x 16 px ships (+10 dB) in the real scene: A straddles the tile cut of both axes
# (tile 64, overlap 16: four tiles see it), B lies inside one tile.
SHIPS = {"A": (100, 48), "B": (20, 160)}  # top-left (row, col)


@pytest.fixture
def ships_raster(tmp_path: Path) -> Path:
    x = s1_db()
    for r, c in SHIPS.values():
        x[r : r + 16, c : c + 16] = 10.0
    return write_raster(tmp_path / "harbour_VV_db.tif", x)


def test_ship_on_a_tile_border_is_counted_once(ships_raster: Path, out: Path, models) -> None:
    grid = TileGrid(217, 268, 64, 16)
    seen_by = [t for t in grid if t.row <= 100 < t.row + 64 - 16 and t.col <= 48 < t.col + 64]
    assert len(seen_by) >= 2  # ship A really is on a border
    res = predict(ships_raster, models["ships"], out / "ships.gpkg")
    assert res.summary.ship_count == 2 and res.summary.pixels_processed == 217 * 268
    feats = features(res.files["vector"])
    assert len(feats) == 2
    for f in feats:
        assert f["class_name"] == "ship" and f["class"] == 0 and f["score"] > 0.9
        # 16 px boxes of 20 m UTM pixels: 320 m on the ground (UTM scale ~0.9998 here).
        assert f["length_m"] == pytest.approx(320, rel=2e-3)
        assert f["width_m"] == pytest.approx(320, rel=2e-3)
        assert 4.3 < f["lon"] < 4.7 and 43.4 < f["lat"] < 43.8  # near Montpellier
        minx, maxx, miny, maxy = f["envelope"]
        assert (maxx - minx, maxy - miny) == pytest.approx((320, 320), abs=1e-6)
    # Centres within one heatmap cell (4 px = 80 m) of the true centres.
    x0, y0 = 620048.241204, 4830114.70107
    truth = [(x0 + (c + 8) * 20, y0 - (r + 8) * 20) for r, c in SHIPS.values()]
    for tx, ty in truth:
        d = min(np.hypot(f["centre_x"] - tx, f["centre_y"] - ty) for f in feats)
        assert d <= 80


def test_decode_and_nms() -> None:
    heat = np.zeros((1, 8, 8), np.float32)
    heat[0, 2, 2], heat[0, 2, 3] = 0.9, 0.9  # a plateau: two equal peaks
    heat[0, 6, 6] = 0.5
    size = np.full((2, 8, 8), 16.0, np.float32)
    offset = np.full((2, 8, 8), 0.5, np.float32)
    dets = decode_centernet(heat, size, offset, 0.3, tile_height=32)
    assert len(dets) == 3
    np.testing.assert_allclose(dets.boxes[0], [2, 2, 18, 18])  # centre (2.5 * 4, 2.5 * 4)
    kept = nms(dets, 0.3)
    assert len(kept) == 2 and kept.scores[0] == pytest.approx(0.9)
    assert len(nms(Detections.empty(), 0.3)) == 0


def test_two_half_boxes_of_one_long_hull_become_one_box() -> None:
    """What a detector gave on the held-out HRSID hull at (65, 19)-(150, 37) of a 256 px tile
    (issue 11: two half-length boxes, neither at IoU 0.5): joined, the box covers the hull.
    Ships moored side by side, and a faint box beside a strong one, stay apart."""
    from sarmae_core.inference.model.detection import merge_fragments
    from sarmae_train.metrics import iou_matrix

    halves = np.array([[76.0, 20.0, 126.0, 33.0], [107.0, 24.0, 152.0, 35.0]])
    beside = np.array([[20.0, 100.0, 100.0, 115.0], [22.0, 114.0, 98.0, 128.0]])  # moored
    faint = np.array([[200.0, 200.0, 240.0, 210.0], [230.0, 201.0, 260.0, 209.0]])
    dets = Detections(np.concatenate([halves, beside, faint]),
                      np.array([0.24, 0.44, 0.6, 0.5, 0.9, 0.1], np.float32),
                      np.zeros(6, np.int64))  # fmt: skip
    truth = np.array([[65.0, 19.0, 150.0, 37.0]])
    assert iou_matrix(halves, truth).max() < 0.5
    merged = merge_fragments(dets)
    assert len(merged) == 5
    joined = merged.boxes[np.argmin(merged.boxes[:, 0] - 76.0 != 0)]
    np.testing.assert_allclose(joined, [76, 20, 152, 35])
    assert iou_matrix(joined[None], truth)[0, 0] > 0.7
    assert merged.scores.max() == pytest.approx(0.9)

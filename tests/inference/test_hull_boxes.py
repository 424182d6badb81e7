"""Ship boxes fitted to the bright hull under each detection (``predict(boxes="hull")``, the
default; ``sarmae predict ships --boxes``), on the real offshore HRSID tile."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sarmae_core.errors import ConfigError
from sarmae_core.inference import RunOptions, predict
from sarmae_core.inference.model.detection import (
    Detections,
    array_windows,
    box_iou,
    fit_boxes_to_hulls,
)
from sarmae_core.inference.products.quicklook import boxes_from_gpkg
from sarmae_train.heldout_ships import write_tile

from .helpers import features
from .test_cfar import HRSID, OFFSHORE, OFFSHORE_SHIPS, covers, needs_hrsid


def offshore_amplitude() -> np.ndarray:
    """The offshore tile as amplitude (DN / 255, DN 0 floored at 0.5 as the ships recipe does)."""
    grey = np.asarray(Image.open(HRSID / "images" / f"{OFFSHORE}.jpg").convert("L"), np.float32)
    return np.maximum(grey / 255.0, 1 / 510)


def fit(db: np.ndarray, boxes: list[tuple[float, ...]], scores: list[float]) -> Detections:
    dets = Detections(np.array(boxes, np.float64), np.array(scores, np.float32),
                      np.zeros(len(boxes), np.int64))  # fmt: skip
    return fit_boxes_to_hulls(dets, array_windows(db, np.ones(db.shape, bool)), db.shape, 0.5)


@needs_hrsid
def test_the_two_halves_of_each_real_long_hull_become_one_box_over_it():
    """Issue 11's failure: a long ship reported as two half-length boxes, neither counting as
    found (IoU < 0.5). Fitted to the hull, each pair is one box over the whole ship."""
    db = 20 * np.log10(offshore_amplitude())
    halves, scores = [], []
    for x0, y0, x1, y1 in OFFSHORE_SHIPS:  # both hulls lie along x
        mid = (x0 + x1) / 2
        halves += [(x0 + 2, y0 + 2, mid, y1 - 1), (mid, y0 + 1, x1 - 3, y1 - 2)]
        scores += [0.5, 0.4]
    truth = np.array(OFFSHORE_SHIPS, np.float64)
    assert all(box_iou(np.array(h), truth).max() < 0.5 for h in halves)
    dets = fit(db, halves, scores)
    assert len(dets) == 2 and dets.is_fitted().all()  # one box per ship, drawn on its hull
    for t in truth:
        best = dets.boxes[np.argmax(box_iou(t, dets.boxes))]
        assert box_iou(t, best[None])[0] >= 0.75 and covers(best, t)


@needs_hrsid
def test_two_ships_side_by_side_joined_by_bright_pixels_stay_two_boxes():
    """The 71 px hull copied 4 px beside itself (moored side by side) with a bright gangway
    between them: both hulls are one bright region, but their two detections lie apart and
    not on one line, so each keeps its own box instead of both becoming one."""
    db = 20 * np.log10(offshore_amplitude())
    x0, y0, x1, y1 = OFFSHORE_SHIPS[1]
    dy = (y1 - y0) + 4
    moored = db.copy()
    hull = db[y0 - 2 : y1 + 2, x0 - 2 : x1 + 2]
    below = moored[y0 - 2 + dy : y1 + 2 + dy, x0 - 2 : x1 + 2]
    np.maximum(below, hull, out=below)
    mid = (x0 + x1) // 2
    moored[y0 + 5 : y1 + dy - 5, mid - 3 : mid + 3] = hull.max()
    boxes = [(x0 + 3, y0 + 1, x1 - 4, y1 - 1), (x0 + 3, y0 + 1 + dy, x1 - 4, y1 - 1 + dy)]
    dets = fit(moored, boxes, [0.6, 0.5])
    assert len(dets) == 2 and box_iou(dets.boxes[0], dets.boxes[1:])[0] == 0.0


@needs_hrsid
def test_boxes_with_no_hull_to_fit_keep_the_detectors_box():
    """Open sea (nothing stands out), a box of a few pixels, and a bright band that runs out of
    the window (land, a quay): the detector's box stays as it was."""
    db = 20 * np.log10(offshore_amplitude())
    sea = (200.0, 300.0, 230.0, 315.0)
    kept = fit(db, [sea], [0.5])
    assert kept.boxes.tolist() == [list(sea)] and not kept.is_fitted().any()
    point = db.copy()  # a ship of a few pixels (coarse pixels): its 3 px bright core on sea
    point[302:305, 402:405] = db.max()
    tiny = (400.5, 300.5, 406.5, 306.5)
    assert fit(point, [tiny], [0.5]).boxes.tolist() == [list(tiny)]
    land = db.copy()
    land[:, 100:140] = db.max() + 10  # runs from the top edge to the bottom one
    box = (110.0, 400.0, 130.0, 430.0)
    assert fit(land, [box], [0.5]).boxes.tolist() == [list(box)]


@needs_hrsid
def test_predict_fits_the_bundled_models_boxes_and_leaves_cfar_alone(tmp_path, out):
    """Through predict on the tile written as the ships recipe writes it: the bundled model's
    box on the 85 px hull is too short to count (IoU 0.48); fitted, it covers the hull.
    CFAR's boxes are its detected pixels: the same either way."""
    tif = write_tile(tmp_path / f"{OFFSHORE}.tif", offshore_amplitude(), 1.0)
    truth = np.array(OFFSHORE_SHIPS, np.float64)
    ious = {}
    for boxes in ("model", "hull"):
        res = predict(tif, "ships", out / f"{boxes}.gpkg", units="amplitude", boxes=boxes)
        found = np.array(boxes_from_gpkg(res.files["vector"], tif), np.float64)
        assert res.summary.ship_count == 2
        ious[boxes] = [box_iou(t, found).max() for t in truth]
        # the layer says which boxes measure the hull (their length_m is the ship's)
        drawn = {"model": "detector", "hull": "hull"}[boxes]
        assert [f["box_from"] for f in features(res.files["vector"])] == [drawn, drawn]
    assert ious["model"][0] < 0.5 <= ious["model"][1]
    assert min(ious["hull"]) >= 0.75 and ious["hull"][1] >= ious["model"][1]
    cfar = []
    for boxes in ("model", "hull"):
        res = predict(tif, "cfar", out / f"cfar_{boxes}.gpkg", units="amplitude", boxes=boxes)
        cfar.append(boxes_from_gpkg(res.files["vector"], tif))
        assert {f["box_from"] for f in features(res.files["vector"])} == {"detector"}
    assert len(cfar[0]) > 2 and np.array_equal(cfar[0], cfar[1])


def test_unknown_box_mode_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match="boxes must be one of hull, model"):
        RunOptions(boxes="tight")


@needs_hrsid
def test_cli_boxes_model_keeps_the_models_boxes(tmp_path, io_backend):
    if io_backend != "gdal":
        pytest.skip("the CLI is run once")
    tif = write_tile(tmp_path / f"{OFFSHORE}.tif", offshore_amplitude(), 1.0)
    found = {}
    for boxes in ("model", "hull"):
        gpkg = tmp_path / f"{boxes}.gpkg"
        run = subprocess.run(
            [sys.executable, "-m", "sarmae_core.cli", "predict", "ships", str(tif), "-o", str(gpkg),
             "--units", "amplitude", "--boxes", boxes, "-q"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        found[boxes] = np.array(boxes_from_gpkg(gpkg, tif), np.float64)
    long_ship = np.array(OFFSHORE_SHIPS[0], np.float64)
    assert box_iou(long_ship, found["model"]).max() < 0.5 <= box_iou(long_ship, found["hull"]).max()
    bad = subprocess.run(
        [sys.executable, "-m", "sarmae_core.cli", "predict", "ships", str(tif), "--boxes", "tight"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "'tight' is not one of 'hull', 'model'" in bad.stderr

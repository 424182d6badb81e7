"""Metrics against values worked out by hand, and the Otsu water baseline on a real tile."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from sarmae_train.baselines import otsu_water
from sarmae_train.metrics import ConfusionMeter, classification_metrics, detection_ap

from .conftest import ETCI, needs_shared_data

GT = np.array([[10, 10, 20, 20, 0], [50, 50, 70, 60, 0]], np.float64)


def _dets(*rows):
    a = np.asarray(rows, np.float64).reshape(-1, 6)
    return a[:, :4], a[:, 4], a[:, 5].astype(int)


def test_perfect_detections_score_one():
    r = detection_ap([_dets([10, 10, 20, 20, 0.9, 0], [50, 50, 70, 60, 0.8, 0])], [GT], 1)
    assert r["AP"] == pytest.approx(1.0) and r["AP50"] == pytest.approx(1.0)


def test_a_false_positive_ranked_between_two_hits():
    # TP (0.9), FP (0.8), TP (0.7): recall .5 .5 1, precision 1 .5 .667 -> envelope 1 .667 .667;
    # 101 recall points: 51 at precision 1 (r <= .5), 50 at 2/3.
    dets = _dets([10, 10, 20, 20, 0.9, 0], [100, 100, 110, 110, 0.8, 0], [50, 50, 70, 60, 0.7, 0])
    r = detection_ap([dets], [GT], 1)
    assert r["AP50"] == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert r["AP"] == pytest.approx(r["AP50"])  # exact boxes: every IoU threshold agrees


def test_iou_thresholds_average_into_coco_ap():
    # one box of IoU 0.64 with its ground truth: a hit at 0.50 .. 0.60 (3 of 10 thresholds)
    box = [10, 10, 20, 20 + 10 / 0.64 - 10]  # same x, taller: IoU = 100 / (100 / 0.64)
    r = detection_ap([_dets([*box, 0.9, 0])], [GT[:1]], 1)
    assert r["AP50"] == pytest.approx(1.0)
    assert r["AP"] == pytest.approx(0.3)
    assert r["AP_per_iou"]["0.65"] == 0.0


def test_duplicates_misses_images_and_classes():
    # a duplicate of a matched box is a false positive; an image without detections adds misses
    dets = [_dets([10, 10, 20, 20, 0.9, 0], [10, 10, 20, 20, 0.8, 0]), _dets()]
    gts = [GT[:1], np.array([[0, 0, 5, 5, 0]], float)]
    r = detection_ap(dets, gts, 1)
    # TP then FP; 2 ground truths: recall .5 .5 -> 51 points at 1, the rest 0
    assert r["AP50"] == pytest.approx(51 / 101)
    # a class without ground truth is left out of the mean, not counted as zero
    two = detection_ap([_dets([10, 10, 20, 20, 0.9, 0], [0, 0, 4, 4, 0.5, 1])], [GT[:1]], 2)
    assert two["AP50"] == pytest.approx(1.0) and two["AP50_per_class"][1] is None
    # detections beyond max_detections per image are dropped (lowest scores first)
    many = _dets(
        *[[100 + i, 100, 110 + i, 110, 0.99, 0] for i in range(5)], [10, 10, 20, 20, 0.1, 0]
    )
    assert detection_ap([many], [GT[:1]], 1, max_detections=5)["AP50"] == 0.0
    assert detection_ap([many], [GT[:1]], 1, max_detections=6)["AP50"] > 0.0


def test_classification_metrics():
    r = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert r["top1"] == pytest.approx(3 / 5)
    assert r["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert r["support"] == {"a": 2, "b": 2, "c": 1}


def test_confusion_meter_iou_and_f1():
    m = ConfusionMeter(2)
    target = np.array([[1, 1, 0, 0], [1, 255, 0, 0]])
    pred = np.array([[1, 0, 1, 0], [1, 1, 0, 0]])
    m.update(target, pred)  # water: tp 2, fn 1, fp 1 (the 255 pixel is ignored)
    r = m.metrics(["background", "water"])
    assert r["water_iou"] == pytest.approx(2 / 4)
    assert r["water_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert r["per_class_iou"]["background"] == pytest.approx(3 / 5)
    assert r["pixels"] == 7


def _wettest_etci_tile() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ETCI tile with the most water: VV (8-bit DN), water (flood or permanent), valid."""
    rows = list(csv.DictReader((ETCI / "tiles.csv").open()))
    tile = max(rows, key=lambda r: float(r["flood_frac"]) + float(r["water_body_frac"]))
    d = ETCI / tile["scene"]
    vv = np.asarray(Image.open(d / "vv" / f"{tile['tile']}.png"), np.float32)
    truth = (np.asarray(Image.open(d / "flood_label" / f"{tile['tile']}.png")) > 0) | (
        np.asarray(Image.open(d / "water_body_label" / f"{tile['tile']}.png")) > 0
    )
    return vv, truth, vv != 255


@needs_shared_data
def test_otsu_finds_the_water_on_a_real_etci_tile():
    vv, truth, valid = _wettest_etci_tile()
    pred = otsu_water(vv, valid)
    m = ConfusionMeter(2)
    m.update(np.where(valid, truth, 255), pred)
    assert m.metrics(["background", "water"])["water_iou"] > 0.6
    assert not pred[~valid].any()
    assert not otsu_water(np.full((8, 8), -12.0)).any()  # flat tile: nothing to split


@needs_shared_data
def test_db_mixture_splits_a_real_tile_and_a_model_tells_it_which_mode_is_water():
    """Two Gaussians on a real ETCI tile's dB (the water sits in the darker one); seeded by a
    water probability the fit takes that class's dB distribution; nothing to split: None."""
    from sarmae_train.baselines import db_mixture

    dn, truth, valid = _wettest_etci_tile()
    db = np.where(valid, dn * 35 / 255 - 30, np.nan)  # the ETCI mapping of the water configs
    fit = db_mixture(db)
    assert fit is not None and fit.water_mean < fit.land_mean and 0 < fit.water_share < 1
    water = fit.posterior(db) >= 0.5
    m = ConfusionMeter(2)
    m.update(np.where(valid, truth, 255), (water & valid).astype(np.uint8))
    assert m.metrics(["background", "water"])["water_iou"] > 0.6
    # the posterior falls with brightness, also beyond the means (the darkest pixels are water)
    ramp = fit.posterior(np.linspace(fit.water_mean - 20, fit.land_mean + 20, 60))
    assert np.all(np.diff(ramp) <= 0) and ramp[0] > 0.99 and ramp[-1] < 0.01
    # one step from the reference as "probability": the reference water's own dB statistics
    guided = db_mixture(db[valid], truth[valid].astype(np.float32), iterations=1)
    assert guided.water_mean == pytest.approx(float(db[valid & truth].mean()), abs=1e-3)
    assert guided.water_share == pytest.approx(float(truth[valid].mean()), abs=1e-6)
    assert db_mixture(np.full(50, -12.0)) is None
    assert db_mixture(db[valid], np.ones(int(valid.sum()), np.float32)) is None  # all water


def test_detection_counts_found_missed_false_at_a_threshold():
    from sarmae_train.metrics import detection_counts

    gt = [np.array([[0, 0, 10, 10, 0], [20, 20, 30, 30, 0]], float), np.zeros((0, 5))]
    dets = [
        # a hit, a duplicate of it (false), a low-score hit on the second ship (below threshold)
        (np.array([[0, 0, 10, 11], [1, 0, 10, 10], [20, 20, 30, 30]], float),
         np.array([0.9, 0.8, 0.1]), np.zeros(3, int)),
        (np.array([[5, 5, 9, 9]], float), np.array([0.5]), np.zeros(1, int)),  # on empty sea
    ]  # fmt: skip
    c = detection_counts(dets, gt, score_threshold=0.3)
    assert (c["objects"], c["found"], c["missed"], c["false"]) == (2, 1, 1, 2)
    c = detection_counts(dets, gt, score_threshold=0.05)
    assert (c["found"], c["missed"], c["false"]) == (2, 0, 2)


def test_box_lengths_say_how_far_boxes_reach_along_hulls_by_ship_length():
    from sarmae_train.evaluate import box_length_table
    from sarmae_train.metrics import box_lengths

    gt = [np.array([[0, 0, 20, 8, 0], [100, 100, 185, 120, 0], [300, 300, 390, 320, 0]], float)]
    dets = [
        # the 20 px ship whole; the 85 px hull marked by a 58 px box and by a larger box of
        # lower score; the 90 px hull has only a box below the threshold
        (np.array([[0, 0, 20, 8], [100, 100, 158, 120], [90, 95, 195, 125], [300, 300, 390, 320]],
                  float), np.array([0.9, 0.8, 0.5, 0.1]), np.zeros(4, int)),
    ]  # fmt: skip
    short, middle, long = box_lengths(dets, gt, score_threshold=0.3)
    assert (short["ships"], short["marked"], short["median_ratio"]) == (1, 1, 1.0)
    assert (middle["ships"], middle["marked"]) == (0, 0) and middle["median_ratio"] is None
    # the box overlapping the 85 px hull most is the 58 px one (IoU 0.68 > 0.54)
    assert (long["ships"], long["marked"]) == (2, 1)
    assert long["median_ratio"] == pytest.approx(58 / 85)
    assert (long["from_px"], long["to_px"]) == (80.0, None)
    text = box_length_table({"model": [short, middle, long]})
    assert "| ships < 40 px | ships 40-80 px | ships >= 80 px |" in text
    row = "| model | 1 of 1 marked, box / ship 1.00 | 0 of 0 marked | "
    assert row + "1 of 2 marked, box / ship 0.68 |" in text


# ---------------------------------------------------------------- oracle threshold, calibration
def test_oracle_threshold_is_the_best_of_every_cut():
    from sarmae_train.metrics import oracle_threshold

    rng = np.random.default_rng(0)
    water = rng.random(3000) < 0.3
    db = np.where(water, rng.normal(-20, 3, 3000), rng.normal(-9, 3, 3000)).round(1)
    best = oracle_threshold(db, water)
    brute = 0.0
    for t in np.unique(db):
        pred = db < t + 0.05
        brute = max(brute, (pred & water).sum() / (pred | water).sum())
    assert best["water_iou"] == pytest.approx(brute)
    pred = db < best["threshold"]
    assert (pred & water).sum() / (pred | water).sum() == pytest.approx(brute)
    assert -17 < best["threshold"] < -12
    assert oracle_threshold(db, np.zeros_like(water))["water_iou"] is None


def test_reliability_of_a_calibrated_and_an_underconfident_probability():
    from sarmae_train.metrics import ReliabilityMeter

    rng = np.random.default_rng(0)
    p = rng.random((200, 200))
    target = (rng.random((200, 200)) < p).astype(np.uint8)  # calibrated by construction
    m = ReliabilityMeter()
    m.update(p, target)
    calibrated = m.metrics()
    assert calibrated["ece"] < 0.01
    freq = [b["observed_frequency"] for b in calibrated["reliability"]]
    assert freq == sorted(freq)
    under = ReliabilityMeter()
    under.update(0.25 + 0.5 * p, target)  # squeezed towards 0.5: under-confident
    assert under.metrics()["ece"] > 0.1
    # IoU at a threshold, checked by hand
    k = calibrated["iou_at_threshold"]["0.7"]
    pred = p >= 0.7
    assert k == pytest.approx((pred & (target == 1)).sum() / (pred | (target == 1)).sum())


def test_a_finer_iou_grid_keeps_the_ece_and_its_table():
    from sarmae_train.metrics import ReliabilityMeter

    rng = np.random.default_rng(1)
    p = rng.random((120, 120)) ** 2
    target = (rng.random((120, 120)) < p).astype(np.uint8)
    target[:3] = 255  # ignored pixels count nowhere
    coarse, fine = ReliabilityMeter(), ReliabilityMeter(iou_steps=20)
    coarse.update(p, target)
    fine.update(p, target)
    a, b = coarse.metrics(), fine.metrics()
    assert b["ece"] == pytest.approx(a["ece"])
    for x, y in zip(a["reliability"], b["reliability"], strict=True):
        assert x["pixels"] == y["pixels"] and x["bin"] == y["bin"]
        assert x["mean_probability"] == pytest.approx(y["mean_probability"])
    assert len(b["iou_at_threshold"]) == 19 and set(a["iou_at_threshold"]) < set(
        b["iou_at_threshold"]
    )
    for t in ("0.35", "0.5", "0.7"):
        assert b["iou_at_threshold"][t] == pytest.approx(
            a["iou_at_threshold"].get(t, b["iou_at_threshold"][t])
        )
        pred, known = p >= float(t), target != 255
        truth = target == 1
        iou = (pred & truth & known).sum() / ((pred | truth) & known).sum()
        assert b["iou_at_threshold"][t] == pytest.approx(iou)
    with pytest.raises(ValueError, match="multiple of bins"):
        ReliabilityMeter(bins=10, iou_steps=15)


def test_the_shipped_threshold_is_the_best_mean_over_left_out_scenes(tmp_path, capsys):
    from sarmae_train.heldout_threshold import main, pick_threshold

    def result(curve):
        return {"split": "x", "models": {"water": {"iou_at_threshold": curve}}}

    # one scene peaks at 0.5, a larger-gain one at 0.4: the mean peaks at 0.4
    a = result({"0.3": 0.22, "0.4": 0.26, "0.5": 0.285, "0.6": 0.26})
    b = result({"0.3": 0.73, "0.4": 0.82, "0.5": 0.72, "0.6": 0.15})
    best, mean = pick_threshold([a, b])
    assert best == 0.4 and mean[0.4] == pytest.approx((0.26 + 0.82) / 2)
    tie = result({"0.4": 0.5, "0.5": 0.5, "0.6": 0.5})
    assert pick_threshold([tie])[0] == 0.5  # a tie keeps the calibrated 0.5
    with pytest.raises(ValueError, match="no model 'water'"):
        pick_threshold([{"split": "y", "models": {}}])
    with pytest.raises(ValueError, match="no held-out results"):
        pick_threshold([])
    # the command prints only the threshold on stdout (for sarmae export --threshold)
    files = []
    for i, r in enumerate((a, b)):
        files.append(tmp_path / f"fold{i}.json")
        files[-1].write_text(json.dumps(r))
    main([str(f) for f in files])
    out = capsys.readouterr()
    assert (
        out.out == "0.4\n"
        and "threshold 0.4: mean water IoU 54.0 (26.0, 82.0)  <- chosen" in out.err
    )
    with pytest.raises(SystemExit, match="error: x has no model 'ships'"):
        main([str(files[0]), "--model", "ships"])


def test_detection_reliability_counts_and_the_best_threshold():
    from sarmae_train.metrics import detection_reliability

    gt = [np.array([[0, 0, 10, 10, 0], [20, 20, 30, 30, 0], [40, 40, 50, 50, 0]], float)]
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70], [40, 41, 50, 51]])
    scores = np.array([0.95, 0.85, 0.55, 0.15], np.float32)  # two ships, clutter, a faint ship
    r = detection_reliability([(boxes, scores, np.zeros(4, int))], gt)
    table = {round(b["bin"][0], 1): b for b in r["reliability"] if b["boxes"]}
    assert table[0.9]["ship_share"] == 1.0 and table[0.5]["ship_share"] == 0.0
    assert table[0.1]["ship_share"] == 1.0 and table[0.8]["boxes"] == 1
    at = {round(c["threshold"], 1): c for c in r["counts_at"]}
    assert (at[0.5]["found"], at[0.5]["missed"], at[0.5]["false"]) == (2, 1, 1)
    assert (at[0.6]["found"], at[0.6]["missed"], at[0.6]["false"]) == (2, 1, 0)
    # all four boxes: 3 found, 1 false (F1 0.857) beats 2 found, 0 false (F1 0.8)
    assert r["best_f1"]["found"] == 3 and r["best_f1"]["threshold"] == pytest.approx(0.15)
    assert 0 < r["ece"] < 1

"""Evaluation metrics in numpy: accuracy, segmentation IoU/F1, detection AP (COCO protocol).

Detection AP follows the COCO evaluation (pycocotools ``COCOeval``, all areas): per class and
IoU threshold, detections of all images sorted by score, each matched greedily to the unmatched
ground-truth box of highest IoU at or above the threshold; precision made monotone from the
right and read at 101 recall points 0, 0.01, ..., 1. ``AP50`` is IoU 0.5; ``AP`` averages
IoU 0.50:0.05:0.95. Classes without ground truth are left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


# ---------------------------------------------------------------------------- classification
def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Top-1, per-class accuracy (recall), confusion matrix (rows: truth, columns: prediction)."""
    k = len(class_names)
    t, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    support = cm.sum(axis=1)
    per_class = {
        name: (float(cm[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(class_names)
    }
    present = [v for v in per_class.values() if v is not None]
    return {
        "top1": float((t == p).mean()) if len(t) else 0.0,
        "mean_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_accuracy": per_class,
        "support": {name: int(s) for name, s in zip(class_names, support, strict=True)},
        "confusion_matrix": cm.tolist(),
        "samples": len(t),
    }


# ---------------------------------------------------------------------------- segmentation
class ConfusionMeter:
    """Pixel confusion matrix over many images; ``ignore`` labels are left out."""

    def __init__(self, num_classes: int, ignore: int = 255) -> None:
        self.k, self.ignore = num_classes, ignore
        self.cm = np.zeros((num_classes, num_classes), np.int64)

    def update(self, target: np.ndarray, pred: np.ndarray) -> None:
        keep = target != self.ignore
        t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
        self.cm += np.bincount(t * self.k + p, minlength=self.k**2).reshape(self.k, self.k)

    def metrics(self, class_names: Sequence[str], positive: int | None = 1) -> dict[str, Any]:
        """IoU per class, mIoU, pixel accuracy; for binary sets also the positive class's
        IoU, F1, precision and recall (``water_iou``, ``water_f1`` ...)."""
        cm = self.cm
        tp = np.diag(cm).astype(np.float64)
        fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (tp + fp + fn)
        out: dict[str, Any] = {
            "per_class_iou": {n: _num(v) for n, v in zip(class_names, iou, strict=True)},
            "miou": _num(np.nanmean(iou)) if np.isfinite(iou).any() else None,
            "pixel_accuracy": _num(tp.sum() / max(cm.sum(), 1)),
            "pixels": int(cm.sum()),
            "confusion_matrix": cm.tolist(),
        }
        if positive is not None and self.k == 2:
            t, f_p, f_n = tp[positive], fp[positive], fn[positive]
            precision = t / (t + f_p) if t + f_p else 0.0
            recall = t / (t + f_n) if t + f_n else 0.0
            out.update(
                {
                    "positive_class": class_names[positive],
                    "water_iou": _num(iou[positive]),
                    "water_f1": _num(2 * t / (2 * t + f_p + f_n)) if t + f_p + f_n else None,
                    "water_precision": _num(precision),
                    "water_recall": _num(recall),
                }
            )
        return out


def oracle_threshold(values: np.ndarray, positive: np.ndarray) -> dict[str, Any]:
    """The best single threshold ``values < t`` = positive, chosen by looking at the labels.

    The strongest form of the threshold baseline (an analyst who tuned one dB value on this
    very scene): every distinct value is tried, by sorting once and counting.

    Args:
        values: backscatter of the labelled pixels (dark = positive, e.g. water in dB).
        positive: bool labels of the same pixels.

    Returns:
        ``threshold`` and the positive class's ``water_iou`` and ``water_f1`` at it.
    """
    v, pos = np.asarray(values, np.float64).ravel(), np.asarray(positive, bool).ravel()
    keep = np.isfinite(v)
    v, pos = v[keep], pos[keep]
    total = int(pos.sum())
    if v.size == 0 or total == 0:
        return {"threshold": None, "water_iou": None, "water_f1": None}
    order = np.argsort(v, kind="stable")
    v, pos = v[order], pos[order]
    tp = np.cumsum(pos)
    fp = np.cumsum(~pos)
    # Only cut between distinct values: all pixels of equal value fall on one side.
    last = np.r_[v[1:] != v[:-1], True]
    tp, fp, vv = tp[last], fp[last], v[last]
    iou = tp / (total + fp)
    i = int(np.argmax(iou))
    nxt = vv[i + 1] if i + 1 < vv.size else vv[i] + 1.0
    return {
        "threshold": float((vv[i] + nxt) / 2),
        "water_iou": float(iou[i]),
        "water_f1": float(2 * tp[i] / (total + tp[i] + fp[i])),
    }


class ReliabilityMeter:
    """Calibration of a positive-class probability: reliability table, ECE, and the IoU the
    map would have at other thresholds (is the default 0.5 the right operating point?)."""

    def __init__(self, bins: int = 10, iou_steps: int | None = None) -> None:
        """``bins`` for the table and ECE; ``iou_steps`` (a multiple of ``bins``, default
        ``bins``) for the thresholds the IoU is given at: a finer grid for choosing an operating
        point without changing the ECE's bins."""
        self.bins = bins
        self.steps = iou_steps or bins
        if self.steps % bins:
            raise ValueError(f"iou_steps ({self.steps}) must be a multiple of bins ({bins})")
        self.count = np.zeros(self.steps, np.int64)
        self.positive = np.zeros(self.steps, np.int64)
        self.prob_sum = np.zeros(self.steps, np.float64)

    def update(self, prob: np.ndarray, target: np.ndarray, ignore: int = 255) -> None:
        keep = target != ignore
        p, t = prob[keep].astype(np.float64), target[keep] == 1
        b = np.minimum((p * self.steps).astype(int), self.steps - 1)
        self.count += np.bincount(b, minlength=self.steps)
        self.positive += np.bincount(b, weights=t, minlength=self.steps).astype(np.int64)
        self.prob_sum += np.bincount(b, weights=p, minlength=self.steps)

    def metrics(self) -> dict[str, Any]:
        def coarse(a: np.ndarray) -> np.ndarray:
            return a.reshape(self.bins, -1).sum(axis=1)

        count, positive = coarse(self.count), coarse(self.positive)
        n = max(int(count.sum()), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_p = coarse(self.prob_sum) / count
            freq = positive / count
        ece = float(np.nansum(count / n * np.abs(mean_p - freq)))
        table = [
            {"bin": [i / self.bins, (i + 1) / self.bins], "pixels": int(c),
             "mean_probability": _num(mp), "observed_frequency": _num(f)}
            for i, (c, mp, f) in enumerate(zip(count, mean_p, freq, strict=True))
        ]  # fmt: skip
        total_pos = int(self.positive.sum())
        iou_at = {}
        for k in range(1, self.steps):
            # pixels with probability >= k / steps are called positive
            tp = int(self.positive[k:].sum())
            fp = int(self.count[k:].sum()) - tp
            iou_at[f"{k / self.steps:g}"] = _num(tp / (total_pos + fp)) if total_pos else None
        return {"ece": ece, "reliability": table, "iou_at_threshold": iou_at}


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


# ---------------------------------------------------------------------------- detection
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [n, 4] against ``b`` [m, 4] (x0, y0, x1, y1): [n, m]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _greedy_matches(
    boxes: np.ndarray, scores: np.ndarray, gt: np.ndarray, thr: float
) -> list[bool]:
    """COCO matching in one image: by falling score, each detection takes the free ground-truth
    box it overlaps most (IoU >= ``thr``); returns, per detection in score order, whether it
    matched."""
    order = np.argsort(-scores, kind="mergesort")
    ious = iou_matrix(boxes[order], gt)
    used = np.zeros(len(gt), bool)
    hits = []
    for d in range(len(order)):
        best, best_iou = -1, thr
        for j in range(len(gt)):
            if not used[j] and ious[d, j] >= best_iou:
                best, best_iou = j, ious[d, j]
        if best >= 0:
            used[best] = True
        hits.append(best >= 0)
    return hits


def detection_counts(
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    score_threshold: float,
    iou: float = 0.5,
) -> dict[str, Any]:
    """Objects found, missed and false detections at one confidence (all classes together).

    What a user of a ship map sees: at the model's threshold, how many ships are on the map,
    how many were missed, and how many boxes mark no ship (IoU >= ``iou`` counts as found).
    """
    found = false = total = 0
    for (boxes, scores, _), gt in zip(detections, ground_truth, strict=True):
        g = np.asarray(gt, np.float64).reshape(-1, 5)[:, :4]
        keep = np.asarray(scores) >= score_threshold
        hits = _greedy_matches(
            np.asarray(boxes).reshape(-1, 4)[keep], np.asarray(scores)[keep], g, iou
        )
        found += sum(hits)
        false += len(hits) - sum(hits)
        total += len(g)
    return {"threshold": score_threshold, "iou": iou, "objects": total, "found": found,
            "missed": total - found, "false": false}  # fmt: skip


def long_sides(boxes: np.ndarray) -> np.ndarray:
    """Each box's longer side [n] (a ship's length in pixels, whatever its heading on the grid),
    for boxes [n, >= 4] as (x0, y0, x1, y1, ...)."""
    b = np.asarray(boxes, np.float64)
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def box_lengths(
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    score_threshold: float,
    bins: Sequence[float] = (40.0, 80.0),
    marked_iou: float = 0.1,
) -> list[dict[str, Any]]:
    """How long the boxes are against the hulls they mark, by reference length (long side, px).

    AP50 counts a 58 px box on an 85 px hull as a miss without saying why; this says whether a
    detector's boxes fall short (ratio < 1) or overreach, and for which ship lengths. Per bin
    (``< bins[0]``, ..., ``>= bins[-1]``): the reference ships, those marked (a detection at
    ``score_threshold`` overlaps them by IoU >= ``marked_iou``), and the median of the marking
    box's long side over the ship's (the box overlapping most).
    """
    edges = [0.0, *map(float, bins), float("inf")]
    ratios: list[list[float]] = [[] for _ in range(len(edges) - 1)]
    ships = [0] * (len(edges) - 1)
    for (boxes, scores, _), gt in zip(detections, ground_truth, strict=True):
        g = np.asarray(gt, np.float64).reshape(-1, 5)[:, :4]
        b = np.asarray(boxes, np.float64).reshape(-1, 4)[np.asarray(scores) >= score_threshold]
        ious = iou_matrix(g, b)
        g_len, b_len = long_sides(g), long_sides(b)
        for i, length in enumerate(g_len):
            k = int(np.searchsorted(edges, length, side="right")) - 1
            ships[k] += 1
            if ious.shape[1] and ious[i].max() >= marked_iou:
                ratios[k].append(float(b_len[int(ious[i].argmax())] / length))
    return [
        {
            "from_px": lo,
            "to_px": None if hi == float("inf") else hi,
            "ships": n,
            "marked": len(r),
            "median_ratio": float(np.median(r)) if r else None,
        }
        for lo, hi, n, r in zip(edges[:-1], edges[1:], ships, ratios, strict=True)
    ]


def _ap_one(
    dets: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], thr: float
) -> float | None:
    """AP of one class at one IoU threshold; ``dets[i]`` = (boxes, scores) of image i."""
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        return None
    scores, tps = [], []
    for (boxes, sc), g in zip(dets, gts, strict=True):
        tps += _greedy_matches(boxes, sc, g, thr)
        scores += list(np.sort(sc, kind="mergesort")[::-1]) if len(sc) else []
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.asarray(tps, np.float64)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = tp_cum / n_gt
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # envelope from the right
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def detection_ap(
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    num_classes: int,
    max_detections: int = 100,
) -> dict[str, Any]:
    """COCO-style AP over a set of images.

    Args:
        detections: per image (boxes [n, 4], scores [n], classes [n]).
        ground_truth: per image boxes [m, 5] as (x0, y0, x1, y1, class).
        num_classes: number of classes.
        max_detections: best-scoring detections kept per image (COCO: 100).

    Returns:
        ``AP`` (IoU .50:.95), ``AP50``, ``AP75``, ``AP_per_iou`` and ``AP50_per_class``.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    per: dict[float, list[float]] = {float(t): [] for t in IOU_THRESHOLDS}
    per_class50: dict[int, float | None] = {}
    for c in range(num_classes):
        dets, gts = [], []
        for (boxes, scores, classes), gt in zip(detections, ground_truth, strict=True):
            keep = np.argsort(-np.asarray(scores), kind="mergesort")[:max_detections]
            boxes, scores, classes = (
                np.asarray(boxes)[keep],
                np.asarray(scores)[keep],
                np.asarray(classes)[keep],
            )
            sel = classes == c
            dets.append((boxes[sel].reshape(-1, 4), scores[sel]))
            g = np.asarray(gt, np.float64).reshape(-1, 5)
            gts.append(g[g[:, 4] == c, :4])
        for t in IOU_THRESHOLDS:
            ap = _ap_one(dets, gts, float(t))
            if ap is not None:
                per[float(t)].append(ap)
            if t == 0.5:
                per_class50[c] = ap
    mean_per_iou = {f"{t:.2f}": (float(np.mean(v)) if v else None) for t, v in per.items()}
    vals = [v for v in mean_per_iou.values() if v is not None]
    return {
        "AP": float(np.mean(vals)) if vals else None,
        "AP50": mean_per_iou["0.50"],
        "AP75": mean_per_iou["0.75"],
        "AP_per_iou": mean_per_iou,
        "AP50_per_class": per_class50,
        "images": len(ground_truth),
        "ground_truth_boxes": int(sum(len(np.asarray(g).reshape(-1, 5)) for g in ground_truth)),
    }


def detection_reliability(
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    iou: float = 0.5,
    bins: int = 10,
) -> dict[str, Any]:
    """Does a box's score mean what it says? Per score bin, the share of boxes that are a ship
    (IoU >= ``iou`` with a free ground-truth box, COCO matching), the expected calibration
    error, found / missed / false at thresholds 0.1 ... 0.9, and the threshold with the best F1
    (the operating point these images would choose).
    """
    scores_all: list[float] = []
    hits_all: list[bool] = []
    total = 0
    for (boxes, scores, _), gt in zip(detections, ground_truth, strict=True):
        g = np.asarray(gt, np.float64).reshape(-1, 5)[:, :4]
        s = np.asarray(scores, np.float64)
        hits_all += _greedy_matches(np.asarray(boxes).reshape(-1, 4), s, g, iou)
        scores_all += list(np.sort(s, kind="mergesort")[::-1])
        total += len(g)
    s, hit = np.asarray(scores_all), np.asarray(hits_all, bool)
    b = np.minimum((s * bins).astype(int), bins - 1)
    count = np.bincount(b, minlength=bins)
    ships = np.bincount(b, weights=hit, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s = np.bincount(b, weights=s, minlength=bins) / count
        freq = ships / count
    ece = float(np.nansum(count / max(len(s), 1) * np.abs(mean_s - freq)))
    table = [
        {"bin": [i / bins, (i + 1) / bins], "boxes": int(c), "mean_score": _num(m),
         "ship_share": _num(f)}
        for i, (c, m, f) in enumerate(zip(count, mean_s, freq, strict=True))
    ]  # fmt: skip

    def counts(t: float) -> dict[str, Any]:
        # greedy matching is by falling score, so the matches above t are those of all boxes
        found = int(hit[s >= t].sum())
        false = int((s >= t).sum()) - found
        f1 = 2 * found / max(2 * found + false + (total - found), 1)
        return {"threshold": t, "found": found, "missed": total - found, "false": false,
                "f1": f1}  # fmt: skip

    at = [counts(k / bins) for k in range(1, bins)]
    candidates = [counts(float(t)) for t in np.unique(s)] if len(s) else [counts(0.5)]
    best = max(candidates, key=lambda c: (c["f1"], c["threshold"]))
    return {"ece": ece, "reliability": table, "counts_at": at, "best_f1": best}

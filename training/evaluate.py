"""Evaluation of a task model on whole images: the numbers that go into ``metrics.json``."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from skimage.filters import threshold_otsu
from torch.utils.data import DataLoader

from sarmae_core.inference.model.detection import (
    Detections,
    array_windows,
    decode_centernet,
    fit_boxes_to_hulls,
    hull_db,
    merge_fragments,
    nms,
)

from .baselines import otsu_water
from .config import EvalConfig
from .datasets import IGNORE, TaskCollate, TaskDataset
from .metrics import (
    ConfusionMeter,
    ReliabilityMeter,
    box_lengths,
    classification_metrics,
    detection_ap,
    detection_counts,
    detection_reliability,
    oracle_threshold,
)
from .report import not_scored

log = logging.getLogger(__name__)


def make_loader(model: Any, dataset: TaskDataset, batch_size: int, **kw: Any) -> DataLoader:
    """Batches padded to the patch size with the model's normalisation mean."""
    multiple = getattr(model, "tile_multiple", model.config.patch_size)
    collate = TaskCollate(dataset.task, multiple, model.config.data.normalization.mean)
    return DataLoader(dataset, batch_size, collate_fn=collate, **kw)


def decode_batch(
    out: dict[str, torch.Tensor],
    cfg: EvalConfig,
    tile_height: int,
    images: np.ndarray | None = None,
    sizes: list[tuple[int, int]] | None = None,
    units: str = "db",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes, scores, classes) from :class:`DetectionModel` outputs; with
    ``cfg.boxes == "hull"`` each box is fitted to the hull under it in ``images`` [N, C, H, W]
    (in ``units``, each valid over its ``sizes``), as predict does."""
    heat, size, offset = (out[k].float().cpu().numpy() for k in ("heatmap", "size", "offset"))
    results = []
    for i in range(heat.shape[0]):
        d = decode_centernet(heat[i], size[i], offset[i], cfg.score_threshold, tile_height)
        if cfg.nms_iou is not None and len(d):
            d = merge_fragments(nms(d, cfg.nms_iou))  # as predict does
        if cfg.boxes == "hull" and images is not None and sizes is not None and len(d):
            h, w = sizes[i]
            db, valid = hull_db(images[i, :, :h, :w], units)
            iou = 1.0 if cfg.nms_iou is None else cfg.nms_iou
            d = fit_boxes_to_hulls(d, array_windows(db, valid), (h, w), iou)
        order = np.argsort(-d.scores, kind="stable")[: cfg.max_detections]
        d = d.select(order) if len(d) else Detections.empty()
        results.append((d.boxes, d.scores, d.classes))
    return results


@torch.no_grad()
def evaluate(
    model: Any,
    dataset: TaskDataset,
    cfg: EvalConfig,
    device: torch.device,
    amp: bool = False,
    records: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on every readable sample of ``dataset`` (whole images).

    Classification: top-1, per-class accuracy, confusion matrix. Segmentation: IoU per class,
    mIoU, and for two classes the positive class's IoU/F1 (``water_iou``, ``water_f1``), with
    the Otsu baseline on the same pixels when ``cfg.baseline == "otsu"``. Detection: COCO AP
    and AP50.

    Args:
        records: if given, receives one entry per prediction (detection: image, box in pixels,
            score, class; classification: image, predicted and true class).
    """
    model.eval()
    task = dataset.task
    loader = make_loader(model, dataset, cfg.batch_size)
    names = dataset.class_names
    truth: list[Any] = []
    preds: list[Any] = []
    ids: list[str] = []
    cfar_preds: list[Any] = []
    cfar = cfar_detector(cfg) if task == "detection" and cfg.baseline == "cfar" else None
    meter = ConfusionMeter(len(names))
    otsu = ConfusionMeter(2) if cfg.baseline == "otsu" and task == "segmentation" else None
    reliability = ReliabilityMeter() if task == "segmentation" and len(names) == 2 else None
    # The set-wide Otsu threshold needs every tile first: keep (vv, target) pairs.
    otsu_tiles: list[tuple[np.ndarray, np.ndarray]] = []
    # Thresholds map water on the first band, the after date of a two-date (flood) model
    dates = list(getattr(model.config.data, "dates", None) or [])
    band = dates.index("after") if dates else 0
    for batch in loader:
        if batch is None:
            continue
        x = batch["image"].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        if task == "classification":
            truth += batch["target"].tolist()
            pred_cls = out.float().argmax(dim=1).cpu().tolist()
            preds += pred_cls
            if records is not None:
                records += [
                    {"image": i, "predicted": names[p], "true": names[t]}
                    for i, p, t in zip(batch["id"], pred_cls, batch["target"].tolist(), strict=True)
                ]
        elif task == "segmentation":
            prob = out.float().softmax(dim=1).cpu().numpy()
            pred = prob.argmax(axis=1)
            target = batch["target"].numpy()
            for i, (h, w) in enumerate(batch["size"]):
                meter.update(target[i, :h, :w], pred[i, :h, :w])
                if reliability is not None:
                    reliability.update(prob[i, 1, :h, :w], target[i, :h, :w])
                if otsu is not None:
                    vv = batch["image"][i, band, :h, :w].numpy()
                    otsu.update(target[i, :h, :w], otsu_water(vv, target[i, :h, :w] != IGNORE))
                    otsu_tiles.append((vv, target[i, :h, :w]))
        else:
            dets = decode_batch(out, cfg, x.shape[-2], batch["image"].numpy(),
                                [tuple(map(int, s)) for s in batch["size"]],
                                model.config.data.units)  # fmt: skip
            preds += dets
            truth += [t.numpy() for t in batch["target"]]
            ids += list(batch["id"])
            if cfar is not None:
                units = model.config.data.units
                for i, (h, w) in enumerate(batch["size"]):
                    cfar_preds.append(run_cfar(cfar, batch["image"][i, 0, :h, :w].numpy(), units))
            if records is not None:
                for image_id, (boxes, scores, classes) in zip(batch["id"], dets, strict=True):
                    records += [
                        {"image": image_id, "box": [round(float(v), 2) for v in b],
                         "score": round(float(s), 5), "class": names[int(c)]}
                        for b, s, c in zip(boxes, scores, classes, strict=True)
                    ]  # fmt: skip
    result: dict[str, Any] = {
        "task": task,
        "class_names": names,
        "split": dataset.split,
        "skipped_unreadable": len(dataset.skipped),
    }
    if task == "classification":
        result.update(classification_metrics(truth, preds, names))
    elif task == "segmentation":
        result.update(meter.metrics(names))
        if otsu is not None:
            result["baseline_otsu"] = otsu.metrics(names)
            result["baseline_otsu_set"] = set_otsu_metrics(otsu_tiles, names)
            result["baseline_oracle_threshold"] = oracle_threshold(
                np.concatenate([vv[t != IGNORE].ravel() for vv, t in otsu_tiles] or [[]]),
                np.concatenate([t[t != IGNORE].ravel() == 1 for _, t in otsu_tiles] or [[]]),
            )
        if reliability is not None:
            result["calibration"] = reliability.metrics()
    else:
        result.update(detection_scores(preds, truth, len(names), cfg, cfg.count_threshold))
        result["calibration"] = detection_reliability(preds, truth)
        if cfar is not None:
            # CFAR's operating point is its PFA: every box it reports counts
            result["baseline_cfar"] = detection_scores(cfar_preds, truth, len(names), cfg, 0.0)
            result["baseline_cfar"]["params"] = asdict(cfar.params)
        if cfg.groups:
            result["groups"] = {}
            for group, prefixes in cfg.groups.items():
                sel = [i for i, n in enumerate(ids) if n.startswith(tuple(prefixes))]
                if not sel:  # e.g. scored on the training split: no held-out scene here
                    continue
                scores = {"model": detection_scores([preds[i] for i in sel],
                                                    [truth[i] for i in sel], len(names), cfg,
                                                    cfg.count_threshold)}  # fmt: skip
                if cfar is not None:
                    scores["cfar"] = detection_scores([cfar_preds[i] for i in sel],
                                                      [truth[i] for i in sel], len(names), cfg,
                                                      0.0)  # fmt: skip
                result["groups"][group] = scores
    if dataset.skipped:
        log.warning("evaluation skipped %d unreadable sample(s)", len(dataset.skipped))
    return result


def detection_scores(
    preds: list[Any], truth: list[Any], num_classes: int, cfg: EvalConfig, threshold: float
) -> dict[str, Any]:
    """COCO AP, AP50 and the ships found / missed / falsely reported at ``threshold``."""
    result = detection_ap(preds, truth, num_classes, cfg.max_detections)
    result["counts_at_threshold"] = detection_counts(preds, truth, threshold)
    result["box_lengths"] = box_lengths(preds, truth, threshold)
    result["detections"] = int(sum(len(p[1]) for p in preds))
    return result


def cfar_detector(cfg: EvalConfig) -> Any:
    """The engine's CA-CFAR with the evaluation's settings: the classic baseline row."""
    from sarmae_core.inference.model.cfar import CfarDetector, CfarParams

    return CfarDetector(CfarParams(**cfg.cfar))


def run_cfar(detector: Any, image: np.ndarray, units: str) -> tuple:
    """(boxes, scores, classes) of CA-CFAR on one [H, W] image in the model's ``units``."""
    from sarmae_core.units import to_intensity

    rows = detector.run(to_intensity(image.astype(np.float64), units)[None, None])["detections"]
    rows = rows[0][np.isfinite(rows[0]).all(axis=1)]
    return rows[:, :4], rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64)


def set_otsu_metrics(tiles: list[tuple[np.ndarray, np.ndarray]], names: list[str]) -> dict:
    """Otsu with one threshold for the whole test set (e.g. one ETCI scene).

    The stronger form of the classic baseline: a scene-wide histogram holds both water and
    land, where a single tile without water would be split in two anyway.
    """
    meter = ConfusionMeter(2)
    values = np.concatenate([vv[t != IGNORE].ravel() for vv, t in tiles]) if tiles else None
    if values is None or values.size == 0:
        return meter.metrics(names)
    threshold = float(threshold_otsu(values[np.isfinite(values)]))
    for vv, target in tiles:
        valid = target != IGNORE
        meter.update(target, ((vv < threshold) & valid).astype(np.uint8))
    result = meter.metrics(names)
    result["threshold"] = threshold
    return result


def headline(metrics: dict[str, Any]) -> str:
    """One line with the main numbers of a metrics dict."""
    task = metrics["task"]
    if not_scored(metrics):
        return "not scored (data.test_split: null): score it with sarmae-train evaluate"

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if task == "classification":
        return f"top-1 {f(metrics['top1'])} on {metrics['samples']} images"
    if task == "segmentation":
        line = f"mIoU {f(metrics['miou'])}"
        if "water_iou" in metrics:
            name = metrics["positive_class"]
            line += f", {name} IoU {f(metrics['water_iou'])} F1 {f(metrics['water_f1'])}"
        if "baseline_otsu" in metrics:
            b = metrics["baseline_otsu"]
            line += f" (Otsu per tile: IoU {f(b.get('water_iou'))} F1 {f(b.get('water_f1'))}"
            if "baseline_otsu_set" in metrics:
                line += f"; per set: IoU {f(metrics['baseline_otsu_set'].get('water_iou'))}"
            if "baseline_oracle_threshold" in metrics:
                o = metrics["baseline_oracle_threshold"]
                line += f"; best single threshold: IoU {f(o.get('water_iou'))}"
            line += ")"
        return line
    line = f"AP {f(metrics['AP'])}, AP50 {f(metrics['AP50'])} on {metrics['images']} images"
    c = metrics.get("counts_at_threshold")
    if c:
        line += (f"; at confidence {c['threshold']}: {c['found']} of {c['objects']} found, "
                 f"{c['missed']} missed, {c['false']} false")  # fmt: skip
    b = metrics.get("baseline_cfar")
    if b:
        c = b["counts_at_threshold"]
        line += (f" (CA-CFAR: AP {f(b['AP'])}, AP50 {f(b['AP50'])}; {c['found']} found, "
                 f"{c['missed']} missed, {c['false']} false)")  # fmt: skip
    return line


def detection_table(metrics: dict[str, Any], name: str = "model") -> str:
    """The held-out table people compare: per scene group, the model and the CA-CFAR row with
    COCO AP, AP50 and found / missed / false at each one's default threshold."""
    rows = ["| images | detector | AP | AP50 | threshold | found | missed | false |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def row(group: str, label: str, m: dict[str, Any]) -> str:
        c = m["counts_at_threshold"]
        ap = "n/a" if m["AP"] is None else f"{100 * m['AP']:.1f}"
        ap50 = "n/a" if m["AP50"] is None else f"{100 * m['AP50']:.1f}"
        return (f"| {group} ({m['images']}, {c['objects']} ships) | {label} | {ap} | {ap50} | "
                f"{c['threshold']:g} | {c['found']} | {c['missed']} | {c['false']} |")  # fmt: skip

    sets = [("all", {"model": metrics, "cfar": metrics.get("baseline_cfar")})]
    sets += list(metrics.get("groups", {}).items())
    for group, scores in sets:
        rows.append(row(group, name, scores["model"]))
        if scores.get("cfar"):
            rows.append(row(group, "CA-CFAR", scores["cfar"]))
    lengths = {name: metrics["box_lengths"]} if metrics.get("box_lengths") else {}
    if lengths and metrics.get("baseline_cfar", {}).get("box_lengths"):
        lengths["CA-CFAR"] = metrics["baseline_cfar"]["box_lengths"]
    if lengths:
        rows += ["", box_length_table(lengths)]
    cal = metrics.get("calibration")
    if cal and "best_f1" in cal:
        rows += ["", reliability_table(cal, name)]
    return "\n".join(rows)


def box_length_table(per_detector: dict[str, list[dict[str, Any]]]) -> str:
    """Per detector and reference ship length: ships marked at its threshold, and the median
    of box length over ship length (:func:`sarmae_train.metrics.box_lengths`)."""
    bins = next(iter(per_detector.values()))

    def span(b: dict[str, Any]) -> str:
        lo, hi = b["from_px"], b["to_px"]
        if not lo:
            return f"< {hi:g} px"
        return f">= {lo:g} px" if hi is None else f"{lo:g}-{hi:g} px"

    rows = ["| detector | " + " | ".join(f"ships {span(b)}" for b in bins) + " |",
            "|---|" + "---|" * len(bins)]  # fmt: skip
    for label, lengths in per_detector.items():
        cells = [
            f"{b['marked']} of {b['ships']} marked"
            + ("" if b["median_ratio"] is None else f", box / ship {b['median_ratio']:.2f}")
            for b in lengths
        ]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def reliability_table(cal: dict[str, Any], name: str) -> str:
    """Score bins of a detector against the share of its boxes that are ships."""
    best = cal["best_f1"]
    rows = [f"reliability of {name} scores (ECE {cal['ece']:.3f}; best F1 {best['f1']:.2f} "
            f"at confidence {best['threshold']:.2f}):",
            "| score | boxes | mean score | share that are ships |",
            "|---|---|---|---|"]  # fmt: skip
    for r in cal["reliability"]:
        if r["boxes"]:
            rows.append(f"| {r['bin'][0]:.1f}-{r['bin'][1]:.1f} | {r['boxes']} | "
                        f"{r['mean_score']:.2f} | {r['ship_share']:.2f} |")  # fmt: skip
    return "\n".join(rows)

"""Evaluation of a task model on whole images: the numbers that go into ``metrics.json``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from skimage.filters import threshold_otsu
from torch.utils.data import DataLoader

from sarmae_core.inference.detection import Detections, decode_centernet, nms

from .baselines import otsu_water
from .config import EvalConfig
from .datasets import IGNORE, TaskCollate, TaskDataset
from .metrics import (
    ConfusionMeter,
    ReliabilityMeter,
    classification_metrics,
    detection_ap,
    detection_counts,
    oracle_threshold,
)

log = logging.getLogger(__name__)


def make_loader(model: Any, dataset: TaskDataset, batch_size: int, **kw: Any) -> DataLoader:
    """Batches padded to the patch size with the model's normalisation mean."""
    multiple = getattr(model, "tile_multiple", model.config.patch_size)
    collate = TaskCollate(dataset.task, multiple, model.config.data.normalization.mean)
    return DataLoader(dataset, batch_size, collate_fn=collate, **kw)


def decode_batch(
    out: dict[str, torch.Tensor], cfg: EvalConfig, tile_height: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes, scores, classes) from :class:`DetectionModel` outputs."""
    heat, size, offset = (out[k].float().cpu().numpy() for k in ("heatmap", "size", "offset"))
    results = []
    for i in range(heat.shape[0]):
        d = decode_centernet(heat[i], size[i], offset[i], cfg.score_threshold, tile_height)
        if cfg.nms_iou is not None and len(d):
            d = nms(d, cfg.nms_iou)
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
    meter = ConfusionMeter(len(names))
    otsu = ConfusionMeter(2) if cfg.baseline == "otsu" and task == "segmentation" else None
    reliability = ReliabilityMeter() if task == "segmentation" and len(names) == 2 else None
    # The set-wide Otsu threshold needs every tile first: keep (vv, target) pairs.
    otsu_tiles: list[tuple[np.ndarray, np.ndarray]] = []
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
                    vv = batch["image"][i, 0, :h, :w].numpy()
                    otsu.update(target[i, :h, :w], otsu_water(vv, target[i, :h, :w] != IGNORE))
                    otsu_tiles.append((vv, target[i, :h, :w]))
        else:
            dets = decode_batch(out, cfg, x.shape[-2])
            preds += dets
            truth += [t.numpy() for t in batch["target"]]
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
        result.update(detection_ap(preds, truth, len(names), cfg.max_detections))
        result["counts_at_threshold"] = detection_counts(preds, truth, cfg.count_threshold)
        result["detections"] = int(sum(len(p[1]) for p in preds))
    if dataset.skipped:
        log.warning("evaluation skipped %d unreadable sample(s)", len(dataset.skipped))
    return result


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
    return line

"""Flood (new water) on held-out before/after pairs: models beside the change baselines.

    python -m sarmae_train.heldout_flood --config training/configs/finetune_flood_bundled.yaml \\
        --flood-model flood=runs/flood/flood.onnx --water-model water \\
        --out runs/heldout/flood_ombria.json

The config's test split must give two channels, before and after (OMBRIA's official test
split: 70 BEFORE/AFTER/MASK triplets, masks = Copernicus EMS flood extents). Flood IoU is
pooled over every labelled pixel, for:

- each ``--flood-model``: a two-date model (channels before, after) run by onnxruntime on
  each whole chip (the chip is one tile of the model), at the threshold the file carries, with
  its IoU at thresholds 0.05 ... 0.95 and the best of them. Run on the training split
  (``data.test_split=train``) that best one is the operating point to export with
  (``sarmae export --threshold``; ``training/recipes/flood.sh``): chosen without the test split;
- each ``--water-model``, as change: water on the after chip and not on the before chip, each
  chip written as a GeoTIFF of VV in dB (``--pixel-size``) and mapped by
  :func:`sarmae_core.predict` with default settings, as a user would map two dates; and the
  same model's water on the after chip alone;
- Otsu on the after chip, per chip and one threshold for the whole split;
- log-ratio change detection: the after - before difference in dB (the log of the intensity
  ratio), split by Otsu per chip and for the whole split (flood = the darkening side);
- the oracle: the best single threshold on the difference, and on the after chip, chosen with
  the labels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import otsu_water
from .config import FinetuneRunConfig, load_config
from .datasets import IGNORE
from .evaluate import set_otsu_metrics
from .heldout import labelled_samples, write_tile
from .metrics import ConfusionMeter, ReliabilityMeter, oracle_threshold

NAMES = ["background", "flood"]


def run(
    cfg: FinetuneRunConfig,
    flood_models: dict[str, str],
    water_models: dict[str, str],
    pixel_size: float,
    limit: int | None = None,
) -> dict[str, Any]:
    """Scores on the test split of ``cfg`` (two channels: before, after)."""
    if list(cfg.data.bands or []) != ["before", "after"]:
        raise SystemExit(f"{cfg.data.format}: data.bands must be [before, after]")
    sessions = {label: _session(path) for label, path in flood_models.items()}
    meters = {k: ConfusionMeter(2) for k in [*flood_models, *water_models]}
    reliability = {k: ReliabilityMeter(bins=20) for k in flood_models}
    after_only = {k: ConfusionMeter(2) for k in water_models}
    otsu_after, otsu_ratio = ConfusionMeter(2), ConfusionMeter(2)
    afters: list[tuple[np.ndarray, np.ndarray]] = []
    ratios: list[tuple[np.ndarray, np.ndarray]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, image, target, known in labelled_samples(cfg, limit):
            before, after = image[0], image[1]
            ratio = after - before  # dB: the log-ratio of intensities
            otsu_after.update(target, otsu_water(after, known))
            otsu_ratio.update(target, otsu_water(ratio, known))
            afters.append((after, target))
            ratios.append((ratio, target))
            for label, session in sessions.items():
                prob = session.run(image[None].astype(np.float32))["probabilities"][0, 1]
                threshold = session.info.seg_threshold
                meters[label].update(target, ((prob >= threshold) & known).astype(np.uint8))
                reliability[label].update(prob, np.where(known, target, IGNORE))
            for label, model in water_models.items():
                wet = [
                    _water(
                        Path(tmp) / f"{label}_{i}_{d}",
                        np.where(known, x, np.nan),
                        model,
                        pixel_size,
                    )
                    for d, x in (("before", before), ("after", after))
                ]
                meters[label].update(target, (wet[1] & ~wet[0] & known).astype(np.uint8))
                after_only[label].update(target, (wet[1] & known).astype(np.uint8))
    labelled = [(x[t != IGNORE], t[t != IGNORE] == 1) for x, t in ratios]
    after_px = np.concatenate([x[t != IGNORE] for x, t in afters])
    flood = np.concatenate([f for _, f in labelled])
    return {
        "split": f"{cfg.data.format} {cfg.data.path} {cfg.data.test_split}",
        "pairs": len(afters),
        "flood_fraction": float(flood.mean()),
        "flood_models": {
            m: meters[m].metrics(NAMES)
            | {"model": p, "threshold": sessions[m].info.seg_threshold}
            | operating_points(reliability[m])
            for m, p in flood_models.items()
        },
        "water_models": {
            m: meters[m].metrics(NAMES) | {"model": p} for m, p in water_models.items()
        },
        "water_models_after_only": {
            m: after_only[m].metrics(NAMES) | {"model": p} for m, p in water_models.items()
        },
        "otsu_after_per_pair": otsu_after.metrics(NAMES),
        "otsu_after_per_split": set_otsu_metrics(afters, NAMES),
        "log_ratio_otsu_per_pair": otsu_ratio.metrics(NAMES),
        "log_ratio_otsu_per_split": set_otsu_metrics(ratios, NAMES),
        "oracle_log_ratio": oracle_threshold(np.concatenate([x for x, _ in labelled]), flood),
        "oracle_after": oracle_threshold(after_px, flood),
    }


def operating_points(meter: ReliabilityMeter) -> dict[str, Any]:
    """IoU at each threshold, the best threshold and the ECE of a model's flood probability."""
    m = meter.metrics()
    iou = {t: v for t, v in m["iou_at_threshold"].items() if v is not None}
    best = max(iou, key=iou.__getitem__) if iou else None
    return {"ece": m["ece"], "iou_at_threshold": m["iou_at_threshold"],
            "best_threshold": None if best is None else float(best)}  # fmt: skip


def _session(path: str) -> Any:
    from sarmae_core.inference.model.backends import OnnxBackend

    be = OnnxBackend(path, device="cpu")
    if list(be.info.dates) != ["before", "after"]:
        raise SystemExit(f"{path} is not a two-date model (dates before, after)")
    return be


def _water(stem: Path, db: np.ndarray, model: str, pixel_size: float) -> np.ndarray:
    """Water mask of one chip through ``predict`` (bool)."""
    import rasterio

    import sarmae_core

    tif = write_tile(stem.with_suffix(".tif"), db, pixel_size)
    with warnings.catch_warnings():  # per-chip notes (resampling) are the model's rule
        warnings.simplefilter("ignore")
        res = sarmae_core.predict(tif, model=model, output=stem.with_name(stem.name + "_w.tif"),
                                  products=("class",))  # fmt: skip
    with rasterio.open(res.files["class"]) as c:
        return c.read(1) == 1


def table(result: dict[str, Any]) -> str:
    """The markdown table of one result: flood IoU in % per method."""

    def pct(m: dict[str, Any]) -> str:
        v = m.get("water_iou")
        return "n/a" if v is None else f"{100 * v:.1f}"

    rows = [
        f"| {label} (two-date model, threshold {m['threshold']:g}) | {pct(m)} |"
        for label, m in result["flood_models"].items()
    ]
    rows += [
        f"| water model `{label}` on each date: after and not before | {pct(m)} |"
        for label, m in result["water_models"].items()
    ]
    rows += [
        f"| water model `{label}` on the after chip alone | {pct(m)} |"
        for label, m in result.get("water_models_after_only", {}).items()
    ]
    o, oa = result["oracle_log_ratio"], result["oracle_after"]
    rows += [
        f"| Otsu on the after chip, per pair / one threshold | {pct(result['otsu_after_per_pair'])}"
        f" / {pct(result['otsu_after_per_split'])} |",
        "| log-ratio (after - before, dB) with Otsu, per pair / one threshold | "
        f"{pct(result['log_ratio_otsu_per_pair'])} / {pct(result['log_ratio_otsu_per_split'])} |",
        f"| oracle: best single threshold on the log-ratio (< {o['threshold']:.1f} dB) | "
        f"{pct(o)} |",
        f"| oracle: best single threshold on the after chip (< {oa['threshold']:.1f} dB) | "
        f"{pct(oa)} |",
    ]
    head = f"| {result['split']}, {result['pairs']} pairs | flood IoU |\n|---|---|\n"
    return head + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="fine-tuning config with bands [before, after]")
    ap.add_argument("--flood-model", action="append", default=[],
                    help="LABEL=two-date .onnx model")  # fmt: skip
    ap.add_argument("--water-model", action="append", default=[],
                    help="LABEL=water model (name or .onnx), run on each date")  # fmt: skip
    ap.add_argument("--pixel-size", type=float, default=10.0, help="metres per pixel of chips")
    ap.add_argument("--limit", type=int, help="first N pairs only (smoke runs)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    cfg = load_config(FinetuneRunConfig, args.config, args.overrides)

    def labelled(items: list[str]) -> dict[str, str]:
        return dict(m.split("=", 1) if "=" in m else (m, m) for m in items)

    result = run(cfg, labelled(args.flood_model), labelled(args.water_model), args.pixel_size,
                 args.limit)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    for label, m in result["flood_models"].items():
        at = ", ".join(f"{t}: {100 * v:.1f}" for t, v in m["iou_at_threshold"].items() if v)
        print(f"{label}: flood IoU at thresholds {at}; best at {m['best_threshold']}; "
              f"ECE {m['ece']:.3f}")  # fmt: skip
    print(f"written {out}")


if __name__ == "__main__":
    main()

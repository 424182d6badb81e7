"""Model cards for the bundled models, written from the files a recipe produced.

    python -m sarmae_train.model_card NAME --out CARD.md --command CMD --onnx MODEL.onnx \
        --pretrain RUN --finetune RUN --eval "LABEL=metrics.json" [--eval ...]

Every figure in a card is read from a metrics or log file of the run; nothing is typed in.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from sarmae_core.contract.reader import read_model_info
from sarmae_core.inference.scene.source import trained_for

#: Terms of the data sets the bundled models are trained on, as each set's publisher states them.
DATA_TERMS = {
    "ETCI 2021": "ETCI 2021 Competition on Flood Detection (NASA IMPACT, IEEE GRSS ESI TC; "
    "Sentinel-1 GRD from ASF). Released publicly for an open-science competition; no explicit "
    "licence.",
    "OMBRIA": "Drakonakis et al., OmbriaNet, IEEE JSTARS 15, 2022 "
    "(doi:10.1109/JSTARS.2022.3155559). Contains modified Copernicus Sentinel data; "
    "labels (c) European Union, Copernicus "
    "Emergency Management Service. Research use with attribution.",
    "MSTAR": "MSTAR public release (DARPA/AFRL), SOC training chips (17 deg); approved for "
    "public release; research use. Ross et al., SPIE 3370, 1998.",
    "HRSID": "Wei et al., HRSID, IEEE Access 2020; GPL-3.0.",
    "pyroSAR": "pyroSAR test raster (MIT); contains modified Copernicus Sentinel data 2015.",
    "SSL4EO-S12": "Wang et al., SSL4EO-S12, IEEE GRSM 2023 (CC BY 4.0; sample from the MIT "
    "rico-hdl repository); contains modified Copernicus Sentinel data 2020.",
    "Volkov": "Volkov & Shvets optical-SAR pairs (GitHub VolkovVl/Optical-SAR-dataset, SAR "
    "half only; research use with attribution, no explicit licence); contains modified "
    "Copernicus Sentinel data 2020.",
}


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _last_row(path: Path) -> dict[str, str]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def water_table(evals: list[tuple[str, dict]]) -> list[str]:
    """The training loop's evaluation (torch, whole tiles) beside the three thresholds."""
    lines = [
        "| held-out set | Mpx | model IoU | model F1 | precision | recall "
        "| Otsu per tile IoU | Otsu per scene IoU | oracle threshold IoU "
        "| model - oracle (IoU points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in evals:
        per_set = m.get("baseline_otsu_set", {}).get("water_iou")
        per_tile = m.get("baseline_otsu", {}).get("water_iou")
        oracle = m.get("baseline_oracle_threshold", {}).get("water_iou")
        gain = "n/a" if oracle is None else f"{100 * (m['water_iou'] - oracle):+.1f}"
        lines.append(
            f"| {label} | {m['pixels'] / 1e6:.1f} | {_pct(m['water_iou'])} "
            f"| {_pct(m['water_f1'])} | {_pct(m.get('water_precision'))} "
            f"| {_pct(m.get('water_recall'))} | {_pct(per_tile)} | {_pct(per_set)} "
            f"| {_pct(oracle)} | {gain} |"
        )
    return lines


def _bands(info: Any) -> str:
    """``VV`` / ``VV, VH``, or ``VV before, VV after`` for a two-date model."""
    if info.dates:
        return ", ".join(f"{p} {d}" for p, d in zip(info.polarisations, info.dates, strict=True))
    return ", ".join(info.polarisations)


def _iou_at(result: dict, threshold: float) -> float | None:
    """A model's water IoU at ``threshold`` from its ``iou_at_threshold`` curve."""
    at = result.get("iou_at_threshold", {})
    return next((v for t, v in at.items() if abs(float(t) - threshold) < 1e-9), None)


def heldout_table(runs: list[tuple[str, dict]], threshold: float) -> list[str]:
    """``python -m sarmae_train.heldout`` results: each model through ``predict``, scored at
    ``threshold`` (the bundled model's, so a fold model exported without it is scored where
    the model a user gets decides)."""
    labels = list(dict.fromkeys(m for _, r in runs for m in r["models"]))
    lines = [
        "| held-out set | " + " | ".join(f"`{m}`" for m in labels)
        + " | Otsu per tile | Otsu per scene | oracle threshold |",
        "|---|" + "---|" * (len(labels) + 3),
    ]  # fmt: skip
    for label, r in runs:
        o = r["oracle_threshold"]
        cells = [f"{label} ({r['tiles']} tiles at {r['pixel_size_m']:g} m)"]
        cells += [_pct(_iou_at(r["models"].get(m, {}), threshold)) for m in labels]
        cells += [_pct(r["otsu_per_tile"]["water_iou"]), _pct(r["otsu_per_scene"]["water_iou"])]
        cells.append(
            f"{_pct(o['water_iou'])} (VV < {o['threshold']:.1f} dB)" if o["threshold"] else "n/a"
        )
        lines.append("| " + " | ".join(cells) + " |")
    shown = ("0.3", "0.4", "0.5", "0.6", "0.7")
    lines += ["", "Calibration of each model's water probability on the same pixels (the table "
              f"above is at {threshold}):", "",
              "| held-out set | model | ECE | " + " | ".join(f"IoU at {t}" for t in shown) + " |",
              "|---|---|---|" + "---|" * len(shown)]  # fmt: skip
    for label, r in runs:
        for m, v in r["models"].items():
            at = v["iou_at_threshold"]
            cells = " | ".join(_pct(at.get(t)) for t in shown)
            lines.append(f"| {label} | `{m}` | {v['ece']:.3f} | {cells} |")
    return lines


def detection_table(evals: list[tuple[str, dict]]) -> list[str]:
    """The training loop's scores, with the CA-CFAR row and the scene groups when present."""
    conf = next((m.get("counts_at_threshold", {}).get("threshold") for _, m in evals), None)
    lines = [f"Counts at the model's confidence {conf}, CA-CFAR's at its PFA (every box it "
             "reports); IoU >= 0.5 is found:", "",
             "| held-out set | detector | images | AP50 | COCO AP | ships | found | missed | "
             "false boxes |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def row(label: str, detector: str, m: dict) -> str:
        c = m.get("counts_at_threshold", {})
        return (
            f"| {label} | {detector} | {m.get('images')} | {_pct(m.get('AP50'))} | "
            f"{_pct(m.get('AP'))} | {c.get('objects', 'n/a')} | {c.get('found', 'n/a')} | "
            f"{c.get('missed', 'n/a')} | {c.get('false', 'n/a')} |"
        )

    for label, m in evals:
        lines.append(row(label, "model", m))
        if m.get("baseline_cfar"):
            lines.append(row(label, "CA-CFAR", m["baseline_cfar"]))
        for group, scores in m.get("groups", {}).items():
            lines.append(row(f"{label}: {group}", "model", scores["model"]))
            if scores.get("cfar"):
                lines.append(row(f"{label}: {group}", "CA-CFAR", scores["cfar"]))
    return lines


def write_card(args: argparse.Namespace) -> str:
    info = read_model_info(args.onnx)
    onnx = Path(args.onnx)
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    evals = []
    for item in args.eval:
        label, _, path = item.partition("=")
        evals.append((label, json.loads(Path(path).read_text())))
    pre = Path(args.pretrain)
    fin = Path(args.finetune)
    pre_cfg = json.loads((pre / "config.json").read_text())
    fin_cfg = json.loads((fin / "config.json").read_text())
    pre_last = _last_row(pre / "log.csv")
    fin_last = _last_row(fin / "log.csv")
    norm = info.normalization
    lines = [
        f"# sarmae bundled model: {info.name}",
        "",
        f"`{onnx.name}`, {onnx.stat().st_size / 1e6:.1f} MB, sha256 `{sha}`.",
        "",
        "## What it does",
        f"- Task: {info.task}; classes {info.class_names}.",
        f"- Input: {_bands(info)} backscatter in **{info.units}** "
        f"(tensor `input` [N, {info.in_chans}, {info.tile_size}, {info.tile_size}]); "
        f"normalisation inside the graph: {norm.get('mode', 'fixed')}"
        + (
            " (each tile standardised by its own mean and std, so any affine rescaling of dB, "
            "such as 8-bit stretched chips, gives the same result)"
            if norm.get("mode") == "per_tile"
            else f", mean {norm['mean']}, std {norm['std']}"
        )
        + ".",
        f"- Trained for {trained_for(info)} ("
        + (
            "finer inputs are averaged into the range; much coarser ones, such as Sentinel-1 "
            "IW GRD at 10-20 m for a 0.5-3 m model, are refused with a message"
            if info.task == "detection" and info.resolution_range_m
            else "inputs outside are resampled to the nearer end"
        )
        + f"); tiles of {info.tile_size} px with "
        f"{info.tile_overlap} px overlap by default; threshold "
        f"{info.seg_threshold if info.task == 'segmentation' else info.det_confidence}.",
        f"- Architecture: SARMAE ViT encoder `{info.preset}` (patch {info.patch_size}), simple "
        "feature pyramid, "
        + (
            (
                "UPerNet-lite decoder"
                + (
                    " with a full-resolution detail path"
                    if info.tile_step > info.patch_size
                    else ""
                )
            )
            if info.task == "segmentation"
            else "CenterNet head"
        )
        + f"; sarmae {info.version}.",
        "",
        "## How it was made (rebuild with one command)",
        "```bash",
        args.command,
        "```",
        "1. SARMAE pretraining (SARE speckle on, no SARC): "
        f"{pre_last.get('step', '?')} steps of batch {pre_cfg['optim']['batch_size']} at "
        f"{pre_cfg['model']['img_size']} px, final loss {float(pre_last.get('loss', 'nan')):.3f} "
        f"(`{pre / 'log.csv'}`).",
        f"2. Fine-tuning: {fin_cfg['optim']['epochs']} epochs, batch "
        f"{fin_cfg['optim']['batch_size']}, crops of {fin_cfg['data'].get('crop')} px, "
        f"layer decay {fin_cfg['optim'].get('layer_decay')}, final training loss "
        f"{float(fin_last.get('loss', 'nan')):.3f}.",
        "",
        "## Training data (with attribution and terms)",
        f"{info.training_data}",
        "",
        *[f"- {k}: {v}" for k, v in DATA_TERMS.items() if k.split()[0] in args.data_used],
        "",
        f"Weights licence: {info.licence}",
        "",
        "## Quality on held-out data",
    ]
    if info.dates:
        from .heldout_flood import table as flood_table

        for item in args.heldout:
            _label, _, path = item.partition("=")
            lines += [
                "New-flood IoU in % on held-out pairs (a two-date model on each whole pair by "
                "onnxruntime; water models through `sarmae_core.predict` on each date), "
                "pooled over the set, beside the change baselines on the same pixels "
                f"(`{args.heldout_command}`):",
                "",
                *flood_table(json.loads(Path(path).read_text())).splitlines(),
                "",
            ]
        lines += ["The training loop's evaluation of the same model (torch, whole pairs; "
                  "'water' columns are the flood class):", "", *water_table(evals)]  # fmt: skip
    elif info.task == "segmentation":
        if args.heldout:
            runs = []
            for item in args.heldout:
                label, _, path = item.partition("=")
                runs.append((label, json.loads(Path(path).read_text())))
            lines += [
                "Water IoU in % through `sarmae_core.predict` with default settings (the "
                "model's own pixel-size rule and tiling), every model at this model's "
                f"threshold {info.seg_threshold}, each held-out tile "
                "written as a GeoTIFF of VV in dB, pooled over the set, beside three "
                f"thresholds on the same pixels (`{args.heldout_command}`):",
                "",
                *heldout_table(runs, info.seg_threshold),
                "",
                "The training loop's evaluation (torch, whole tiles, water where its "
                "probability is at least 0.5):",
                "",
            ]
        lines += water_table(evals)
        lines += [
            "",
            "Otsu per scene: one threshold from the histogram of the whole held-out set (for "
            "ETCI one scene); Otsu per tile: a threshold per tile (fails on tiles without "
            "water); oracle: the best single dB threshold, chosen by looking at the labels.",
        ]
    else:
        if args.heldout:
            from .evaluate import reliability_table
            from .heldout_ships import table

            for item in args.heldout:
                _label, _, path = item.partition("=")
                result = json.loads(Path(path).read_text())
                lines += [
                    "Through `sarmae_core.predict` with default settings (the model's own "
                    "pixel-size rule, tiling, merging across tiles and confidence), each "
                    "held-out tile written as a GeoTIFF of amplitude at 1 m; COCO AP and AP50 "
                    "from boxes down to confidence 0.01, found / missed / false at each "
                    f"detector's default threshold (`{args.heldout_command}`):",
                    "",
                    *table(result).splitlines(),
                    "",
                ]
                for name, m in result["models"].items():
                    if "calibration" in m["scores"]["all"] and m["default_threshold"] > 0:
                        cal = reliability_table(m["scores"]["all"]["calibration"], name)
                        lines += [*cal.splitlines(), ""]
            lines += ["The training loop's evaluation of the same model (torch, whole tiles):", ""]
        lines += detection_table(evals)
    if args.picture:
        title = args.picture_title or (
            "On a calibrated Sentinel-1 scene" if info.task == "segmentation" else "On a scene"
        )
        lines += ["", f"## {title}", "",
                  f"![input and result]({args.picture})", "", args.picture_caption]  # fmt: skip
    lines += ["", "## Known limits", *[f"- {x}" for x in args.limit], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--pretrain", required=True)
    ap.add_argument("--finetune", required=True)
    ap.add_argument("--eval", action="append", default=[], help="LABEL=metrics.json")
    ap.add_argument("--heldout", action="append", default=[],
                    help="LABEL=result.json of python -m sarmae_train.heldout")  # fmt: skip
    ap.add_argument("--heldout-command", default="python -m sarmae_train.heldout",
                    help="the commands that wrote the --heldout files")  # fmt: skip
    ap.add_argument(
        "--data-used", nargs="+",
        default=["ETCI", "OMBRIA", "MSTAR", "pyroSAR", "SSL4EO-S12", "Volkov"],
    )  # fmt: skip
    ap.add_argument("--limit", action="append", default=[], help="a known limit (repeatable)")
    ap.add_argument("--picture", help="picture of the model on a real scene (path from the card)")
    ap.add_argument("--picture-caption", default="")
    ap.add_argument("--picture-title", default="", help="heading over the picture")
    args = ap.parse_args()
    Path(args.out).write_text(write_card(args))
    print(f"model card: {args.out}")


if __name__ == "__main__":
    main()

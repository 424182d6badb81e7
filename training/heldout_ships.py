"""Ship detectors on held-out HRSID scenes through ``sarmae_core.predict``, beside CA-CFAR.

    python -m sarmae_train.heldout_ships --config training/configs/finetune_ships_bundled.yaml \\
        --model old=runs/old_ships.onnx --model new=ships --model cfar=cfar \\
        --out runs/heldout/ships.json

What a user gets, not what the training loop sees: each tile of the config's test split (whole
scenes held out from training) is written as a GeoTIFF of amplitude (the split's declared
DN -> amplitude affine) at ``--pixel-size`` metres in a UTM zone and run through
:func:`sarmae_core.predict` with default tiling, so the model's pixel-size rule, its tiles and
the merging of boxes across tiles all apply. Boxes are kept down to confidence ``--floor`` for
COCO AP and AP50; found / missed / false are counted at each detector's own default threshold
(CFAR: every box, its PFA being its operating point). Per scene type from the config's
``eval.groups``; each learned model also gets a reliability table of its scores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sarmae_core.inference.options import BOXES

from .config import FinetuneRunConfig, load_config
from .datasets import build_dataset
from .evaluate import box_length_table, detection_scores, reliability_table
from .heldout import tiling_option
from .metrics import detection_reliability, iou_matrix, long_sides

#: UTM 51N, somewhere for tiles that carry no georeference
CRS, X0, Y0 = "EPSG:32651", 350_000.0, 3_460_000.0


def write_tile(path: Path, amplitude: np.ndarray, pixel_size: float) -> Path:
    """One [H, W] amplitude tile as a float32 GeoTIFF, band described VV."""
    import rasterio
    from rasterio.transform import from_origin

    h, w = amplitude.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=CRS,
                   transform=from_origin(X0, Y0, pixel_size, pixel_size))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(amplitude.astype(np.float32), 1)
        dst.set_band_description(1, "VV")
    return path


def multilook(amplitude: np.ndarray, looks: int) -> np.ndarray:
    """[H, W] amplitude averaged in intensity over ``looks`` x ``looks`` pixels (edge rows and
    columns that do not fill a block are dropped)."""
    if looks <= 1:
        return amplitude
    h, w = (amplitude.shape[0] // looks) * looks, (amplitude.shape[1] // looks) * looks
    blocks = np.square(amplitude[:h, :w], dtype=np.float64).reshape(
        h // looks, looks, w // looks, looks
    )
    return np.sqrt(blocks.mean(axis=(1, 3))).astype(np.float32)


def zoom_in(amplitude: np.ndarray, zoom: int) -> np.ndarray:
    """[H, W] amplitude on ``zoom`` times finer pixels, interpolated bilinearly in intensity on
    pixel areas (output pixel i covers input pixels i / zoom to (i + 1) / zoom, so boxes found on
    it divided by ``zoom`` land on the input's pixels)."""
    if zoom <= 1:
        return amplitude
    from scipy import ndimage

    intensity = np.square(amplitude, dtype=np.float64)
    fine = ndimage.zoom(intensity, zoom, order=1, grid_mode=True, mode="nearest")
    return np.sqrt(np.maximum(fine, 0)).astype(np.float32)


def read_boxes(gpkg: Path, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes [n, 4] and scores [n] of a ships GeoPackage over a tile of :func:`write_tile`."""
    from osgeo import ogr

    ds = ogr.Open(str(gpkg))
    boxes, scores = [], []
    for feature in ds.GetLayer(0):
        x0, x1, y0, y1 = feature.GetGeometryRef().GetEnvelope()
        boxes.append(((x0 - X0) / pixel_size, (Y0 - y1) / pixel_size,
                      (x1 - X0) / pixel_size, (Y0 - y0) / pixel_size))  # fmt: skip
        scores.append(feature.GetField("score"))
    ds = None
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float32)


def describe_hulls(boxes: np.ndarray, reference: np.ndarray) -> str:
    """What a picture of one tile shows, in words for its caption: per reference ship, longest
    first, how many boxes mark it (IoU >= 0.1) and how long the best one is, with its IoU
    (a ship counts as found at 0.5). ``boxes`` [n, 4] and ``reference`` [m, 4 or 5] in pixels."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)[:, :4]
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ious = iou_matrix(ref, b)
    length, box_length = long_sides(ref), long_sides(b)
    parts = []
    for i in np.argsort(-length, kind="stable"):
        marking = np.flatnonzero(ious[i] >= 0.1) if len(b) else np.zeros(0, int)
        if not len(marking):
            parts.append(f"the {length[i]:.0f} px hull has no box")
            continue
        j = int(marking[np.argmax(ious[i, marking])])
        verdict = "found" if ious[i, j] >= 0.5 else "short of counting as found"
        count = "one box" if len(marking) == 1 else f"{len(marking)} boxes"
        parts.append(f"the {length[i]:.0f} px hull has {count}, the best "
                     f"{box_length[j]:.0f} px long (IoU {ious[i, j]:.2f}, {verdict})")  # fmt: skip
    return "; ".join(parts)


def detector(spec: str) -> Any:
    """What ``predict`` runs for a ``--model`` value: a name or file as it is, and
    ``cfar:key=value,...`` as CA-CFAR with those ``CfarParams`` (e.g. ``cfar:min_area_m2=100``).
    """
    if not spec.startswith("cfar:"):
        return spec
    from sarmae_core.inference.model.cfar import CfarDetector, CfarParams

    opts = dict(kv.split("=", 1) for kv in spec[5:].split(",") if kv)
    kinds = {f: type(v) for f, v in vars(CfarParams()).items()}
    return CfarDetector(CfarParams(**{k: kinds[k](float(v)) for k, v in opts.items()}))


def run(
    cfg: FinetuneRunConfig,
    models: dict[str, str],
    pixel_size: float,
    floor: float,
    tiling: dict[str, int] | None = None,
    nms_iou: float | None = None,
    looks: int = 1,
    zoom: int = 1,
    ship_boxes: str = "hull",
) -> dict:
    """Scores of ``models`` (label -> bundled name, .onnx file, ``cfar`` or ``cfar:...``) on
    the test split. ``tiling`` (``tile``, ``overlap``) and ``nms_iou`` replace the learned
    models' own (for comparing inference settings on fine-tuned checkpoints; an ONNX file's
    tile is fixed). ``looks`` > 1 averages each tile's intensity over ``looks`` x ``looks``
    pixels first (pixels that much coarser, as multilooking makes them) and scales the boxes back,
    so the same reference boxes score how a model reads coarser pixels; ``zoom`` > 1 interpolates
    each tile to ``zoom`` times finer pixels (:func:`zoom_in`), boxes scaled back the same way;
    ``ship_boxes`` is predict's ``boxes`` (``hull``: fitted to the hull under each detection;
    ``model``: the model's own)."""
    import dataclasses

    import sarmae_core
    from sarmae_core.inference.model.backends import load_backend

    ds = build_dataset(cfg.data, cfg.data.test_split, "amplitude", False, cfg.run.seed)
    runners = {label: detector(m) for label, m in models.items()}
    learned = {label: not m.startswith("cfar") for label, m in models.items()}
    if nms_iou is not None:
        for label in runners:
            if learned[label]:
                runners[label] = backend = load_backend(runners[label])
                backend.info = dataclasses.replace(backend.info, det_iou_threshold=nms_iou)
    defaults = {label: load_backend(m).info.det_confidence for label, m in runners.items()}
    factor = looks / zoom  # the tiles' pixel size over the reference's
    preds: dict[str, list[Any]] = {m: [] for m in models}
    truth, ids = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, item in enumerate(ds.items):
            loaded = ds.load(item)
            amplitude = zoom_in(multilook(cfg.data.units.to_physical(loaded.image)[0], looks), zoom)
            tif = write_tile(Path(tmp) / f"t{i}.tif", amplitude, pixel_size * factor)
            truth.append(np.asarray(loaded.target, np.float64).reshape(-1, 5))
            ids.append(ds.item_id(item))
            for label, model in runners.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = sarmae_core.predict(
                        tif, model=model, output=Path(tmp) / f"{label}{i}.gpkg",
                        units="amplitude", boxes=ship_boxes,
                        threshold=floor if defaults[label] > floor else None,
                        **(tiling if tiling and learned[label] else {}),
                    )  # fmt: skip
                boxes, scores = read_boxes(res.files["vector"], pixel_size * factor)
                boxes = boxes * factor  # back on the reference's pixels
                preds[label].append((boxes, scores, np.zeros(len(scores), np.int64)))
    out: dict[str, Any] = {"split": f"{cfg.data.path} {cfg.data.test_split}", "tiles": len(ids),
                           "pixel_size_m": pixel_size * factor, "looks": looks, "zoom": zoom,
                           "boxes": ship_boxes,
                           "images": ids,
                           "models": {}}  # fmt: skip
    groups = {"all": list(range(len(ids)))}
    for name, prefixes in cfg.eval.groups.items():
        groups[name] = [i for i, n in enumerate(ids) if n.startswith(tuple(prefixes))]
    for label in models:
        per = {}
        for name, sel in groups.items():
            p, t = [preds[label][i] for i in sel], [truth[i] for i in sel]
            per[name] = detection_scores(p, t, 1, cfg.eval, defaults[label])
        per["all"]["calibration"] = detection_reliability(preds[label], truth)
        out["models"][label] = {"model": models[label], "default_threshold": defaults[label],
                                "scores": per}  # fmt: skip
    return out


def table(result: dict[str, Any]) -> str:
    """Markdown table: per scene group, one row per detector."""
    lines = ["| held-out | detector | AP | AP50 | threshold | found | missed | false |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    groups = next(iter(result["models"].values()))["scores"]
    for group in groups:
        for label, m in result["models"].items():
            s = m["scores"][group]
            c = s["counts_at_threshold"]
            lines.append(
                f"| {group} ({s['images']} tiles, {c['objects']} ships) | {label} | "
                f"{100 * (s['AP'] or 0):.1f} | {100 * (s['AP50'] or 0):.1f} | "
                f"{c['threshold']:g} | {c['found']} | {c['missed']} | {c['false']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="fine-tuning config (its test split)")
    ap.add_argument("--model", action="append", required=True,
                    help="LABEL=model (name, .onnx file, cfar or cfar:key=value,...)")  # fmt: skip
    ap.add_argument("--pixel-size", type=float, default=1.0, help="metres per tile pixel")
    ap.add_argument("--floor", type=float, default=0.01, help="lowest confidence kept for AP")
    ap.add_argument("--tile", type=int, help="tile side for the learned models (default: theirs)")
    ap.add_argument("--overlap", type=int, help="tile overlap with --tile (default: a quarter)")
    ap.add_argument("--nms-iou", type=float, help="NMS IoU of the learned models (default: theirs)")
    ap.add_argument("--looks", type=int, default=1,
                    help="average N x N pixels first (N times coarser pixels; boxes scored on "
                         "the reference's pixels)")  # fmt: skip
    ap.add_argument("--zoom", type=int, default=1,
                    help="interpolate to N times finer pixels first (boxes scored on the "
                         "reference's pixels)")  # fmt: skip
    ap.add_argument("--boxes", choices=BOXES, default="hull",
                    help="predict's ship boxes: fitted to the hull under each detection "
                         "(default) or the model's own")  # fmt: skip
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    cfg = load_config(FinetuneRunConfig, args.config, args.overrides)
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    tiling = tiling_option(args.tile, args.overlap)
    if args.looks < 1 or args.zoom < 1:
        ap.error(f"--looks and --zoom must be whole numbers >= 1, got {args.looks}, {args.zoom}")
    if args.looks > 1 and args.zoom > 1:
        ap.error("--looks makes pixels coarser and --zoom finer: give one of them")
    result = run(
        cfg,
        models,
        args.pixel_size,
        args.floor,
        tiling,
        args.nms_iou,
        args.looks,
        args.zoom,
        args.boxes,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(
        "\n"
        + box_length_table(
            {k: m["scores"]["all"]["box_lengths"] for k, m in result["models"].items()}
        )
    )
    for label, m in result["models"].items():
        if not models[label].startswith("cfar"):
            print(f"\n{label}:")
            print(reliability_table(m["scores"]["all"]["calibration"], label))


if __name__ == "__main__":
    main()

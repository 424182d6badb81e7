"""A picture of water models on held-out tiles: the bands, the reference mask, each model's map.

    python -m sarmae_train.tile_picture --config finetune_water_vvvh_bundled.yaml \\
        --model "VV=sarmae_core/models/bundled/water.onnx" \\
        --model "VV+VH=sarmae_core/models/bundled/water_vvvh.onnx" --out docs/water_vvvh_tiles.png

Tiles come from the config's test split (read in dB through its declared units, as in
evaluation). The tiles shown are not the best ones: ``--tiles`` evenly spaced, in tile order,
over the tiles with at least 2 % reference water. Each tile is written as a GeoTIFF at
``--pixel-size`` and each model maps it through ``sarmae_core.predict``, as a user's run does
(the model's bands by polarisation name, its tiling and threshold, nodata masked); its IoU on
the tile is written over its map.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sarmae_core.contract.reader import read_model_info
from sarmae_core.inference.model.backends import resolve_model_path

from .baselines import otsu_water
from .config import FinetuneRunConfig, load_config
from .datasets import build_dataset
from .heldout import SceneMaps, labelled_samples, polarisations, predict_maps, write_tile

IGNORE = 255
WATER_RGB = np.array([40, 110, 255], np.float32)


def _grey(db: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """dB band as 8-bit grey, stretched on its 2-98 % range (a viewing stretch only)."""
    lo, hi = np.percentile(db[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    return (255 * np.clip((db - lo) / max(hi - lo, 1e-6), 0, 1)).astype(np.uint8)


def _overlay(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    rgb[mask] = 0.35 * rgb[mask] + 0.65 * WATER_RGB
    return rgb.astype(np.uint8)


def _iou(pred: np.ndarray, ref: np.ndarray) -> float | None:
    known = ref != IGNORE
    p, r = pred & known, (ref == 1) & known
    union = (p | r).sum()
    return None if union == 0 else float((p & r).sum() / union)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="fine-tuning config (its test split)")
    ap.add_argument("--model", action="append", required=True, help="LABEL=model.onnx")
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--otsu", action="store_true", help="add an Otsu-per-tile panel on VV")
    ap.add_argument("--pixel-size", type=float, required=True, help="metres per pixel of tiles")
    ap.add_argument(
        "--scene", action="store_true", help="map the tiles laid out as their scene (ETCI)"
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)

    cfg = load_config(FinetuneRunConfig, args.config, args.overrides)
    ds = build_dataset(cfg.data, cfg.data.test_split, "db", False, cfg.run.seed, "segmentation")
    bands = [b.upper() for b in cfg.data.bands]
    pols = polarisations(cfg)  # the tile's bands as predict reads them (one unnamed band: VV)
    models = []
    for spec in args.model:
        label, _, path = spec.partition("=")
        info = read_model_info(resolve_model_path(path))
        missing = [p for p in info.polarisations if p.upper() not in pols]
        if missing:
            raise SystemExit(f"{path} needs {missing}; the data have {bands}")
        models.append((label, path))

    wet = [i for i in range(len(ds)) if float((ds[i]["target"] == 1).float().mean()) >= 0.02]
    if not wet:
        raise SystemExit("no test tile has 2 % reference water")
    picks = [wet[int(k)] for k in np.linspace(0, len(wet) - 1, min(args.tiles, len(wet)))]

    rows = []
    notes: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        layout = None
        if args.scene:
            ids: dict[int, str] = {}
            layout = SceneMaps(list(labelled_samples(cfg, None, ids)), ids, pols)
            layout.map_scene(dict(models), args.pixel_size, Path(tmp), None, notes)
        for i in picks:
            sample = ds[i]
            image, ref = sample["image"].numpy(), sample["target"].numpy()
            valid = ref != IGNORE
            cells = [(_grey(image[c], valid), b) for c, b in enumerate(bands)]
            cells.append((_overlay(_grey(image[0], valid), ref == 1), "reference"))
            if args.otsu:
                otsu = otsu_water(image[0], valid).astype(bool)
                iou = _iou(otsu, ref)
                text = f"Otsu: IoU {100 * iou:.0f} %" if iou is not None else "Otsu"
                cells.append((_overlay(_grey(image[0], valid), otsu), text))
            if layout is None:
                pixels = np.where(valid, image[: len(pols)], np.nan)
                tif = write_tile(Path(tmp) / f"t{i}.tif", pixels, args.pixel_size, pols)
            for k, (label, path) in enumerate(models):
                if layout is not None:
                    pred = layout.window(label, i)[0] == 1
                else:
                    pred = predict_maps(tif, path, Path(tmp) / f"m{k}_{i}.tif", None, notes)[0] == 1
                iou = _iou(pred, ref)
                text = f"{label}: IoU {100 * iou:.0f} %" if iou is not None else label
                cells.append((_overlay(_grey(image[0], valid), pred & valid), text))
            rows.append((sample["id"], cells))

    side, pad, head = ref.shape[0], 4, 16
    ncol = len(rows[0][1])
    canvas = Image.new("RGB", (ncol * (side + pad) + pad, len(rows) * (side + pad + head) + pad),
                       "white")  # fmt: skip
    draw = ImageDraw.Draw(canvas)
    for r, (tile_id, cells) in enumerate(rows):
        y = pad + r * (side + pad + head)
        for c, (pixels, text) in enumerate(cells):
            x = pad + c * (side + pad)
            canvas.paste(Image.fromarray(pixels), (x, y + head))
            draw.text((x + 2, y + 2), text if c else f"{text}  {Path(tile_id).name}"[:42], "black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out}: {len(rows)} tiles x {ncol} panels")


if __name__ == "__main__":
    main()

"""Water models on held-out tiles through ``sarmae_core.predict``, beside the threshold baselines.

    python -m sarmae_train.heldout --config training/configs/finetune_water_bundled.yaml \\
        --pixel-size 20 --model water --model old=runs/old_water.onnx --out runs/heldout/etci.json

What a user gets, not what the training loop sees: each tile of the config's test split is
written as a georeferenced GeoTIFF of VV backscatter in dB (through the split's declared
units, at ``--pixel-size`` metres, in a UTM zone) and run through :func:`sarmae_core.predict`
with default settings, so the model's own resampling rule, tiling and threshold apply. Water
IoU is pooled over all labelled pixels of the split, beside three thresholds on the same
pixels: Otsu per tile, one Otsu threshold for the whole split ("per scene"), and the best
single dB threshold chosen with the labels ("oracle"). Each model also gets a reliability
table (ECE) and its IoU at other probability thresholds: is 0.5 the right operating point?

Ablations beside each model, kept out of the product until they win: the scene's dB mixture
(HydroSAR/GFM style, :func:`_mixture_ablation`), the model's water without the pixels brighter
than its own land (:func:`_bright_cut`), and with ``--flip-average`` the model's probability
averaged with its map of the raster mirrored left to right (test-time flipping, twice the
model's time), scored as one more model.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sarmae_core.contract.metadata import default_overlap

from .baselines import DbMixture, db_mixture, otsu_water
from .config import FinetuneRunConfig, load_config
from .datasets import IGNORE, build_dataset
from .datasets.etci import TILE_POSITION
from .evaluate import set_otsu_metrics
from .metrics import ConfusionMeter, ReliabilityMeter, oracle_threshold

#: UTM 33N, 500 km east, 5000 km north: somewhere for tiles that carry no georeference.
CRS, X0, Y0 = "EPSG:32633", 500_000.0, 5_000_000.0


def write_tile(
    path: Path, db: np.ndarray, pixel_size: float, bands: tuple[str, ...] = ("VV",)
) -> Path:
    """A ``[H, W]`` or ``[C, H, W]`` dB tile as a float32 GeoTIFF at ``pixel_size`` metres, its
    bands described by polarisation (``bands``), as predict reads a Sentinel-1 product."""
    import rasterio
    from rasterio.transform import from_origin

    db = db[None] if db.ndim == 2 else db
    if len(bands) != db.shape[0]:
        raise ValueError(f"{db.shape[0]} bands in the tile, {len(bands)} names {bands}")
    _, h, w = db.shape
    profile = dict(
        driver="GTiff", width=w, height=h, count=len(bands), dtype="float32", crs=CRS,
        transform=from_origin(X0, Y0, pixel_size, pixel_size), nodata=float("nan"),
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(db.astype(np.float32))
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
    return path


def polarisations(cfg: FinetuneRunConfig) -> tuple[str, ...]:
    """The split's bands by polarisation name (``data.bands`` names; one unnamed band is VV)."""
    names = [str(b).upper() for b in cfg.data.bands]
    return tuple(names) if all(n in ("VV", "VH", "HH", "HV") for n in names) else ("VV",)


def labelled_samples(
    cfg: FinetuneRunConfig, limit: int | None = None, ids: dict[int, str] | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(index, image [C, H, W] in dB, target uint8 [H, W], labelled [H, W])`` of the first
    ``limit`` readable samples of ``cfg``'s test split (``ids`` receives each one's id)."""
    ds = build_dataset(cfg.data, cfg.data.test_split, "db", False, cfg.run.seed, "segmentation")
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        sample = ds[i]
        if sample is None:
            continue
        if ids is not None:
            ids[i] = sample["id"]
        target = sample["target"].numpy().astype(np.uint8)
        yield i, sample["image"].numpy(), target, target != IGNORE


def tiling_option(tile: int | None, overlap: int | None) -> dict[str, int] | None:
    """``predict``'s tiling from the held-out tools' ``--tile`` and ``--overlap`` (a quarter of
    the tile when not given); None without ``--tile``: the models' own."""
    if not tile:
        return None
    return {"tile": tile, "overlap": default_overlap(tile) if overlap is None else overlap}


class SceneMaps:
    """The split's tiles laid out again as the scene they were cut from (each at its column and
    row, the gaps between kept tiles nodata), and each model's class and probability maps of
    that scene from one ``predict`` run: what a user who maps the whole scene gets, with the
    context of the neighbouring tiles, instead of each tile alone."""

    def __init__(
        self,
        samples: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
        ids: dict[int, str],
        bands: tuple[str, ...],
    ) -> None:
        """``samples`` and ``ids`` as :func:`labelled_samples` yields and fills them."""
        tiles = [(i, image, known) for i, image, _, known in samples]
        if not tiles:
            raise SystemExit("error: the split holds no readable tile to lay out")
        where = {i: TILE_POSITION.search(ids[i]) for i, _, _ in tiles}
        if not all(where.values()):
            bad = next(ids[i] for i, m in where.items() if m is None)
            raise SystemExit(
                f"error: --scene needs tiles named <scene>_x-<col>_y-<row> (ETCI), got {bad}"
            )
        self.size = tiles[0][1].shape[-2:]
        h, w = self.size
        pos = {i: (int(m.group(2)), int(m.group(1))) for i, m in where.items() if m}
        row0, col0 = min(r for r, _ in pos.values()), min(c for _, c in pos.values())
        self.origin = {i: ((r - row0) * h, (c - col0) * w) for i, (r, c) in pos.items()}
        height = max(y for y, _ in self.origin.values()) + h
        width = max(x for _, x in self.origin.values()) + w
        self.bands = bands
        self.mosaic = np.full((len(bands), height, width), np.nan, np.float32)
        for i, image, known in tiles:
            y, x = self.origin[i]
            self.mosaic[:, y : y + h, x : x + w] = np.where(known, image[: len(bands)], np.nan)
        self.maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def map_scene(
        self,
        models: dict[str, str],
        pixel_size: float,
        folder: Path,
        tiling: dict[str, int] | None,
        notes: set[str],
        flipped: Mapping[str, str] | None = None,
    ) -> dict[str, float]:
        """Each model (label -> model for ``predict``) maps the mosaic, written as a GeoTIFF
        at ``pixel_size`` in ``folder``, once; its maps go to :attr:`maps`. ``flipped``: labels
        flip-averaged from the maps of another label (:func:`flip_averaged`; that label comes
        first in ``models``). Returns each model's seconds (a flip-averaged one's include the
        maps it was made from)."""
        tif = write_tile(folder / "scene.tif", self.mosaic, pixel_size, self.bands)
        seconds: dict[str, float] = {}
        for k, (label, model) in enumerate(models.items()):
            out = folder / f"scene_map{k}.tif"
            map_model(tif, label, model, out, tiling, notes, flipped or {}, self.maps, seconds)
        return seconds

    def window(self, label: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Model ``label``'s class and probability over tile ``i``."""
        (y, x), (h, w) = self.origin[i], self.size
        pred, prob = self.maps[label]
        return pred[y : y + h, x : x + w], prob[y : y + h, x : x + w]


def run(
    cfg: FinetuneRunConfig,
    models: dict[str, str],
    pixel_size: float,
    limit: int | None = None,
    tiling: dict[str, int] | None = None,
    scene: bool = False,
    flip_average: bool = False,
) -> dict[str, Any]:
    """Scores of ``models`` (label -> name or file for ``predict``) on the test split;
    ``tiling`` (``tile``, ``overlap``) replaces the models' own (a checkpoint's: an ONNX file's
    tile is fixed); ``scene``: the models map the tiles laid out as their scene
    (:class:`SceneMaps`), the thresholds score the same pixels as ever; ``flip_average``: each
    model is scored once more, as ``LABEL, flip-averaged`` (:func:`flip_averaged`)."""
    names = ["background", "water"]
    # each flip-averaged label -> the label whose maps it averages with the mirrored ones
    flipped = {f"{label}, flip-averaged": label for label in models} if flip_average else {}
    models = {**models, **{label: models[plain] for label, plain in flipped.items()}}
    meters = {m: ConfusionMeter(2) for m in models}
    # IoU every 0.05 (the choice of an operating point), ECE on the usual 10 bins
    reliability = {m: ReliabilityMeter(iou_steps=20) for m in models}
    seconds = dict.fromkeys(models, 0.0)
    notes: set[str] = set()
    otsu = ConfusionMeter(2)
    tiles: list[tuple[np.ndarray, np.ndarray]] = []
    # for the ablations: each model's probability and water
    probs: dict[str, list[np.ndarray]] = {m: [] for m in models}
    water: dict[str, list[np.ndarray]] = {m: [] for m in models}
    bands = polarisations(cfg)
    ids: dict[int, str] = {}
    samples: Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray]]
    samples = labelled_samples(cfg, limit, ids)
    layout = None
    if scene:  # every tile is needed first, to lay the scene out; read once
        samples = list(samples)
        layout = SceneMaps(samples, ids, bands)
    with tempfile.TemporaryDirectory() as tmp:
        if layout is not None:
            seconds.update(layout.map_scene(models, pixel_size, Path(tmp), tiling, notes, flipped))
        for i, image, target, known in samples:
            db = image[0]  # the thresholds read VV
            if layout is None:
                # nodata back to NaN: the dataset filled it for the network; predict masks it
                pixels = np.where(known, image[: len(bands)], np.nan)
                tif = write_tile(Path(tmp) / f"t{i}.tif", pixels, pixel_size, bands)
            otsu.update(target, otsu_water(db, known))
            tiles.append((db, target))
            maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # this tile's, as predicted
            took: dict[str, float] = {}
            for k, (label, model) in enumerate(models.items()):
                if layout is not None:
                    pred, prob = layout.window(label, i)
                else:
                    out = Path(tmp) / f"m{k}_{i}.tif"
                    pred, prob = map_model(
                        tif, label, model, out, tiling, notes, flipped, maps, took
                    )
                    seconds[label] += took[label]
                pred = np.where(known & (pred != 255), pred, 0)
                meters[label].update(target, (pred == 1).astype(np.uint8))
                reliability[label].update(np.nan_to_num(prob), np.where(known, target, IGNORE))
                probs[label].append(np.nan_to_num(prob).astype(np.float16))
                water[label].append(pred == 1)
    values = np.concatenate([d[t != IGNORE] for d, t in tiles])
    labels = np.concatenate([t[t != IGNORE] == 1 for _, t in tiles])
    oracle = oracle_threshold(values, labels)
    return {
        "split": f"{cfg.data.format} {cfg.data.path} {cfg.data.test_split}",
        "tiles": len(tiles),
        "pixel_size_m": pixel_size,
        "mapped": "as one scene" if scene else "tile by tile",
        "water_fraction": float(labels.mean()),
        "models": {
            m: {
                **meters[m].metrics(names),
                **reliability[m].metrics(),
                "seconds": seconds[m],
                "model": models[m],
            }
            for m in models
        },
        "otsu_per_tile": otsu.metrics(names),
        "otsu_per_scene": set_otsu_metrics(tiles, names),
        "oracle_threshold": oracle,
        "mixture_per_scene": _mixture_metrics(tiles, _mixture(tiles, None), names),
        "mixture_ablation": {m: _mixture_ablation(tiles, probs[m], names) for m in models},
        "bright_cut_ablation": {m: _bright_cut(tiles, water[m], names) for m in models},
        "reference_water_by_probability": {
            m: _water_by_probability(tiles, values, labels, probs[m], oracle["threshold"])
            for m in models
        },
        "notes": sorted({n.split(":", 1)[-1].strip() for n in notes})[:20],
    }


def map_model(
    tif: Path,
    label: str,
    model: str,
    out: Path,
    tiling: dict[str, int] | None,
    notes: set[str],
    flipped: Mapping[str, str],
    maps: dict[str, tuple[np.ndarray, np.ndarray]],
    took: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Model ``label``'s class and probability of ``tif`` into ``maps[label]``, its seconds
    into ``took[label]``: flip-averaged from the maps of ``flipped[label]`` (made before it,
    whose seconds it includes) when ``label`` is in ``flipped``, else through ``predict``."""
    t0 = time.perf_counter()
    if label in flipped:
        plain = flipped[label]
        maps[label] = flip_averaged(tif, model, out, tiling, notes, maps[plain])
        took[label] = took[plain]
    else:
        maps[label] = predict_maps(tif, model, out, tiling, notes)
        took[label] = 0.0
    took[label] += time.perf_counter() - t0
    return maps[label]


def flip_averaged(
    tif: Path,
    model: str,
    out: Path,
    tiling: dict[str, int] | None,
    notes: set[str],
    maps: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """``maps`` (the model's class and probability of ``tif``) with the probability averaged
    with the model's map of ``tif`` mirrored left to right (flipped back), classified at the
    model's own threshold (255: no data)."""
    pred, prob = maps
    mirrored = _mirrored(tif, out.with_name(f"{out.stem}_mirrored_in.tif"))
    mirrored_out = out.with_name(f"{out.stem}_mirrored.tif")
    _, prob_m = predict_maps(mirrored, model, mirrored_out, tiling, notes)
    prob = 0.5 * (prob + prob_m[:, ::-1])
    water = np.nan_to_num(prob) >= _threshold(model)
    return np.where(pred == 255, 255, water).astype(np.uint8), prob


@functools.cache
def _threshold(model: str) -> float:
    """The model's own operating point (an ONNX file's or a checkpoint's), loaded once per
    model, not once per tile."""
    from sarmae_core.inference.model.backends import load_backend

    return load_backend(model).info.seg_threshold


def _mirrored(tif: Path, path: Path) -> Path:
    """``tif`` mirrored left to right, on the same grid."""
    import rasterio

    with rasterio.open(tif) as src:
        profile, data = src.profile, src.read()
        names = src.descriptions
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :, ::-1])
        for i, name in enumerate(names, start=1):
            if name:
                dst.set_band_description(i, name)
    return path


def predict_maps(
    tif: Path, model: str, out: Path, tiling: dict[str, int] | None, notes: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One model's class and probability maps of ``tif`` through ``predict``."""
    import rasterio

    import sarmae_core

    with warnings.catch_warnings():  # per-tile notes; the summary says enough
        warnings.simplefilter("ignore")
        res = sarmae_core.predict(tif, model=model, output=out, products=("class", "probability"),
                                  **(tiling or {}))  # fmt: skip
    notes.update(str(x) for x in res.notes)
    with rasterio.open(res.files["class"]) as c:
        pred = c.read(1)
    with rasterio.open(res.files["probability"]) as p:
        prob = p.read(1)
    return pred, prob


def _mixture(
    tiles: list[tuple[np.ndarray, np.ndarray]], model_probs: list[np.ndarray] | None
) -> DbMixture | None:
    """Two Gaussians fitted to the labelled pixels' dB of the whole split (one scene):
    unsupervised from Otsu's split (``model_probs`` None; 50 EM steps), or the water and land
    distributions of the scene as a model maps them (one step from its water at >= 0.5: its
    soft probabilities, a broad band of low values over land, would widen the water class
    until it wins nowhere)."""
    labelled = [t != IGNORE for _, t in tiles]
    values = np.concatenate([d[k] for (d, _), k in zip(tiles, labelled, strict=True)])
    if model_probs is None:
        return db_mixture(values)
    water = np.concatenate([p[k] >= 0.5 for p, k in zip(model_probs, labelled, strict=True)])
    return db_mixture(values, water.astype(np.float32), iterations=1)


def _water_metrics(
    tiles: list[tuple[np.ndarray, np.ndarray]], maps: Iterator[np.ndarray], names: list[str]
) -> dict[str, Any]:
    """Pooled metrics of one water map (bool [H, W]) per tile, on the labelled pixels."""
    meter = ConfusionMeter(2)
    for (_, target), water in zip(tiles, maps, strict=True):
        meter.update(target, (water & (target != IGNORE)).astype(np.uint8))
    return meter.metrics(names)


def _mixture_metrics(
    tiles: list[tuple[np.ndarray, np.ndarray]], fit: DbMixture | None, names: list[str]
) -> dict[str, Any]:
    """The water of ``fit`` (posterior >= 0.5) scored, with the fit's parameters."""
    maps = (
        fit.posterior(db) >= 0.5 if fit is not None else np.zeros(db.shape, bool) for db, _ in tiles
    )
    return {**_water_metrics(tiles, maps, names), "fit": None if fit is None else vars(fit)}


def _mixture_ablation(
    tiles: list[tuple[np.ndarray, np.ndarray]], probs: list[np.ndarray], names: list[str]
) -> dict[str, Any]:
    """A physics-based refinement of a model's map, scored as an ablation: the scene's dB
    mixture seen through the model (``guided``), and the average of its water posterior with
    the model's probability (``fused``, water at >= 0.5)."""
    fit = _mixture(tiles, probs)
    fused = (
        0.5 * (p.astype(np.float32) + fit.posterior(db)) >= 0.5
        if fit is not None else np.zeros(db.shape, bool)
        for (db, _), p in zip(tiles, probs, strict=True)
    )  # fmt: skip
    return {
        "guided": _mixture_metrics(tiles, fit, names),
        "fused": _water_metrics(tiles, fused, names),
    }


def _bright_cut(
    tiles: list[tuple[np.ndarray, np.ndarray]], water: list[np.ndarray], names: list[str]
) -> dict[str, Any]:
    """A model's water without the pixels brighter than its own land (their 3 x 3 median dB,
    which quiets speckle and keeps a feature's edges, above the median dB of the labelled
    pixels it calls land), scored as an ablation: would a brightness rule keep dykes and roads
    between ponds out of the water? ``removed``: the share of the model's water it takes
    away."""
    from scipy.ndimage import median_filter

    labelled = [t != IGNORE for _, t in tiles]
    land = np.concatenate([d[k & ~w] for (d, _), w, k in zip(tiles, water, labelled, strict=True)])
    if not land.size:
        return {"water_iou": None, "land_median_db": None, "removed": 0.0}
    median = float(np.median(land))
    cut = [w & ~(median_filter(d, 3) > median) for (d, _), w in zip(tiles, water, strict=True)]
    before = sum(int(w.sum()) for w in water)
    after = sum(int(c.sum()) for c in cut)
    return {
        **_water_metrics(tiles, iter(cut), names),
        "land_median_db": median,
        "removed": 1 - after / before if before else 0.0,
    }


# Probability bands for where a model's misses lie: sure it is land, unsure, water at 0.5
PROBABILITY_BANDS = ((0.0, 0.1), (0.1, 0.5), (0.5, 1.0))


def _water_by_probability(
    tiles: list[tuple[np.ndarray, np.ndarray]],
    db: np.ndarray,
    ref: np.ndarray,
    probs: list[np.ndarray],
    oracle_db: float | None,
) -> dict[str, Any]:
    """Where the reference's water lies in a model's probability, and how it looks in VV: for
    each band of :data:`PROBABILITY_BANDS`, its share of the reference water, the median dB of
    those pixels and the share of them darker than the oracle threshold (``oracle_db``), beside
    the reference land's median dB. ``db`` and ``ref``: the labelled pixels' dB and reference
    water, in ``tiles``' order (as the oracle threshold reads them). Water the model is sure
    is land and that is as bright as land is out of reach of any threshold too: a difference
    in what the reference calls water (a river's sandbars and ice, a field's outline), not a
    dark area the model missed."""
    labelled = (t != IGNORE for _, t in tiles)
    prob = np.concatenate([p[k] for p, k in zip(probs, labelled, strict=True)]).astype(np.float32)
    land = db[~ref]
    bands = []
    for lo, hi in PROBABILITY_BANDS:
        inside = ref & (prob >= lo) & ((prob < hi) if hi < 1.0 else (prob <= hi))
        n = int(inside.sum())
        dark = float(np.mean(db[inside] < oracle_db)) if n and oracle_db is not None else None
        bands.append({
            "probability": [lo, hi],
            "share": n / max(int(ref.sum()), 1),
            "median_db": float(np.median(db[inside])) if n else None,
            "below_oracle_threshold": dark,
        })  # fmt: skip
    return {"bands": bands, "land_median_db": float(np.median(land)) if land.size else None}


def water_by_probability_line(label: str, found: dict[str, Any]) -> str:
    """One line of the CLI's report: :func:`_water_by_probability` for model ``label``."""
    parts = []
    for b in found["bands"]:
        lo, hi = b["probability"]
        if b["median_db"] is None:
            parts.append(f"{lo:g}-{hi:g}: none")
            continue
        dark = b["below_oracle_threshold"]
        below = "" if dark is None else f", {100 * dark:.1f} % below the oracle threshold"
        parts.append(
            f"{lo:g}-{hi:g}: {100 * b['share']:.1f} % (median {b['median_db']:.1f} dB{below})"
        )
    land = found["land_median_db"]
    land_db = "n/a" if land is None else f"{land:.1f} dB"
    return (
        f"{label}: the reference's water by the model's probability, "
        + "; ".join(parts) + f"; the reference's land: median {land_db}"
    )  # fmt: skip


def table_row(result: dict[str, Any]) -> str:
    """One markdown row: each model's IoU, then the three thresholds (water IoU in %)."""
    cells = [f"{result['split']} ({result['tiles']} tiles, {result['pixel_size_m']:g} m)"]
    cells += [_pct(m["water_iou"]) for m in result["models"].values()]
    cells += [_pct(result[k]["water_iou"]) for k in ("otsu_per_tile", "otsu_per_scene")]
    o = result["oracle_threshold"]
    cells.append(f"{_pct(o['water_iou'])} (< {o['threshold']:.1f} dB)" if o["threshold"] else "n/a")
    return "| " + " | ".join(cells) + " |"


def _pct(v: float | None) -> str:
    """A water IoU (0..1 or None) in % for a table."""
    return "n/a" if v is None else f"{100 * v:.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="fine-tuning config (its test split)")
    ap.add_argument(
        "--model", action="append", required=True,
        help="LABEL=model (a bundled name or an .onnx file); LABEL defaults to the model",
    )  # fmt: skip
    ap.add_argument("--pixel-size", type=float, required=True, help="metres per pixel of tiles")
    ap.add_argument("--limit", type=int, help="first N tiles only (smoke runs)")
    ap.add_argument("--tile", type=int, help="tile side for checkpoints (default: the model's)")
    ap.add_argument("--overlap", type=int, help="tile overlap with --tile (default: a quarter)")
    ap.add_argument("--scene", action="store_true",
                    help="map the tiles laid out as their scene (ETCI), not alone")  # fmt: skip
    ap.add_argument("--flip-average", action="store_true",
                    help="also score each model's probability averaged with its map of the "
                    "raster mirrored left to right (twice the model's time)")  # fmt: skip
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    cfg = load_config(FinetuneRunConfig, args.config, args.overrides)
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    tiling = tiling_option(args.tile, args.overlap)
    result = run(cfg, models, args.pixel_size, args.limit, tiling, args.scene, args.flip_average)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    labels = " | ".join(result["models"])
    print(f"| held-out set | {labels} | Otsu per tile | Otsu per scene | oracle |")
    print(table_row(result))
    for label, m in result["models"].items():
        at = {k: round(100 * v, 1) for k, v in m["iou_at_threshold"].items() if v is not None}
        print(f"{label}: ECE {m['ece']:.3f}; IoU at thresholds {at}; {m['seconds']:.1f} s")
        ab = result["mixture_ablation"][label]
        print(
            f"{label} with the scene's dB mixture (ablation): guided by the model "
            f"{_pct(ab['guided']['water_iou'])}, average with the model "
            f"{_pct(ab['fused']['water_iou'])}; unsupervised mixture per scene "
            f"{_pct(result['mixture_per_scene']['water_iou'])}"
        )
        cut = result["bright_cut_ablation"][label]
        print(
            f"{label} without the pixels brighter than its own land (ablation): "
            f"{_pct(cut['water_iou'])}, {100 * cut['removed']:.1f} % of its water removed"
        )
        print(water_by_probability_line(label, result["reference_water_by_probability"][label]))
    print(f"written {out}")


if __name__ == "__main__":
    main()

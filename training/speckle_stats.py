"""How much speckle does SARE add to the pretraining data, compared with what the data carry?

    python -m sarmae_train.speckle_stats --config training/configs/pretrain_evidence.yaml \\
        --out runs/evidence/speckle_stats.json

SARE multiplies a Gamma speckle of L synthetic looks into the encoder input. Whether that is a
hard denoising task or a small perturbation depends on the speckle the images already hold:
speckle of L0 looks times independent speckle of L looks has the variance of
1 / (1/L0 + 1/L + 1/(L0 L)) looks. For each source of a pretraining config this reads
``--samples`` samples as pretraining does (same sources, windows and declared units), measures
their equivalent number of looks (:func:`sarmae_core.speckle.estimate_enl`, the median over the
most homogeneous ``--window`` px windows of each sample, then the median over samples), and
measures it again after the config's SARE at its noisiest level (``min_looks``) and at its
median level (the middle of the log-std range it draws from). ``log-std`` is the standard
deviation of the speckle in natural log intensity, what the encoder sees as noise.

An 8-bit chip stretched per chip (dB or intensity mapped to 0..255) carries speckle whose
statistics follow the stretch, not the sensor: its ENL is that of the declared units.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarmae_core.speckle import (
    SpeckleAugment,
    apply_speckle,
    estimate_enl,
    gamma_speckle,
    log_speckle_std,
    looks_from_log_std,
)

from .config import PretrainRunConfig, load_config
from .data import build_source
from .pretrain import build_pretrain_model


def combined_looks(native: float, synthetic: float) -> float:
    """Looks of the product of independent mean-1 speckles of ``native`` and ``synthetic``
    looks: the variance of a product of independent mean-1 factors is (1 + 1/L0)(1 + 1/L) - 1."""
    inv = 1 / native + 1 / synthetic + 1 / (native * synthetic)
    return 1 / inv


def source_enl(
    images: list[np.ndarray], units: str, window: int, looks: float | None = None, seed: int = 0
) -> list[float]:
    """ENL of each image's first band, after ``looks`` of synthetic speckle when given."""
    out = []
    gen = torch.Generator().manual_seed(seed)
    for img in images:
        band = torch.from_numpy(np.ascontiguousarray(img[:1])).float()
        if looks is not None:
            n = gamma_speckle(band.shape, looks, gen)
            band = apply_speckle(band, n, units)
        out.append(estimate_enl(band[0].numpy(), units=units, window=window))
    return out


def summarise(values: list[float]) -> dict[str, float]:
    q = np.percentile(values, [25, 50, 75])
    return {"median": float(q[1]), "q25": float(q[0]), "q75": float(q[2])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="pretraining config (its data.sources)")
    ap.add_argument("--samples", type=int, default=64, help="samples read per source")
    ap.add_argument("--window", type=int, default=16,
                    help="ENL window side in pixels (a 128 px sample gives 64)")  # fmt: skip
    ap.add_argument("--out", help="JSON file to write (optional)")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    if args.samples < 1:
        raise SystemExit(f"--samples must be at least 1, got {args.samples}")
    cfg = load_config(PretrainRunConfig, args.config, args.overrides)
    model = build_pretrain_model(cfg)
    window, units = model.config.img_size, model.config.data.units
    speckle = model.config.speckle
    sare = SpeckleAugment(speckle, units)
    levels = {
        "noisiest": float(speckle.min_looks),
        # the middle of the log-std range SARE draws uniformly from
        "median": looks_from_log_std((sare.sigma_lo + sare.sigma_hi) / 2),
    }
    sources = [build_source(s, cfg.data.root, window, units) for s in cfg.data.sources]
    total = sum(len(s) for s in sources)
    rows = []
    for k, (src, sc) in enumerate(zip(sources, cfg.data.sources, strict=True)):
        rng = np.random.default_rng(k)
        picks = rng.choice(len(src), size=min(args.samples, len(src)), replace=False)
        images = [src.get(int(i), np.random.default_rng([k, int(i)]))[0] for i in picks]
        native = source_enl(images, units, args.window)
        row: dict[str, Any] = {
            "source": f"{sc.kind} {', '.join(sc.paths) or sc.sar}",
            "share": len(src) / total,
            "samples": len(images),
            "native_enl": summarise(native),
        }
        for name, looks in levels.items():
            measured = source_enl(images, units, args.window, looks, seed=k)
            row[f"sare_{name}"] = {
                "looks": looks,
                "enl": summarise(measured),
                "expected_enl": combined_looks(row["native_enl"]["median"], looks),
            }
        rows.append(row)
    l0 = log_speckle_std
    print(f"SARE in this config: p {speckle.p if speckle.enabled else 0}, synthetic looks "
          f"{levels['noisiest']:.1f} (log-std {l0(levels['noisiest']):.2f}) to "
          f"{'none' if math.isinf(speckle.max_looks) else speckle.max_looks}; "
          f"median level {levels['median']:.1f} looks; ENL on {args.window} px windows, "
          "median over samples [quartiles]")  # fmt: skip
    print(
        "| source | share of samples | native ENL | its log-std | ENL with SARE, median "
        "level | ENL with SARE, noisiest | SARE's log-std over the native |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        n, med, worst = r["native_enl"], r["sare_median"]["enl"], r["sare_noisiest"]["enl"]
        ratio = l0(r["sare_noisiest"]["looks"]) / l0(n["median"])
        print(f"| {r['source']} | {r['share']:.0%} | {n['median']:.2f} [{n['q25']:.2f}-"
              f"{n['q75']:.2f}] | {l0(n['median']):.2f} | {med['median']:.2f} | "
              f"{worst['median']:.2f} | {ratio:.2f} |")  # fmt: skip
    result = {"config": args.config, "window": args.window, "levels": levels, "sources": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

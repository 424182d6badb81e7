"""What a detection config's training crops show: how many hold a ship, how many ships are whole
in them, and how many whole long hulls, over several epochs of augmentation.

    python -m sarmae_train.crop_stats --config training/configs/finetune_ships_bundled.yaml \\
        --epochs 20 data.root=../shared/data [data.augment.object_crop=0.5 ...]

Prints one line per config; used to see why a detector rarely learns long hulls
(training/README.md, "Ships: object-centred training crops").
"""

from __future__ import annotations

import argparse
from typing import Any

from .config import FinetuneRunConfig, load_config
from .datasets import build_dataset
from .metrics import long_sides


def crop_stats(cfg: FinetuneRunConfig, epochs: int, long_px: float = 80.0) -> dict[str, Any]:
    """Over ``epochs`` passes of the training split as training draws them: crops, the share
    holding a box, whole and cut boxes per crop (a cut box touches the crop's edge) and whole
    boxes at least ``long_px`` long per crop."""
    ds = build_dataset(cfg.data, cfg.data.train_split, "db", True, cfg.run.seed, "detection")
    crops = holding = whole = cut = long = 0
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sample = ds[i]
            if sample is None:
                continue
            t = sample["target"].numpy().reshape(-1, 5)
            h, w = sample["image"].shape[-2:]
            crops += 1
            holding += len(t) > 0
            edge = (t[:, 0] <= 0) | (t[:, 1] <= 0) | (t[:, 2] >= w) | (t[:, 3] >= h)
            length = long_sides(t)
            whole += int((~edge).sum())
            cut += int(edge.sum())
            long += int(((~edge) & (length >= long_px)).sum())
    n = max(crops, 1)
    return {
        "crops": crops,
        "holding_a_box": holding / n,
        "whole_per_crop": whole / n,
        "cut_per_crop": cut / n,
        "long_px": long_px,
        "whole_long_per_crop": long / n,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="detection fine-tuning config")
    ap.add_argument("--epochs", type=int, default=20, help="passes over the training split")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides (data.root=...)")
    args = ap.parse_args(argv)
    cfg = load_config(FinetuneRunConfig, args.config, args.overrides)
    s = crop_stats(cfg, args.epochs)
    print(f"object_crop {cfg.data.augment.object_crop:g}: {s['crops']} crops, "
          f"{s['holding_a_box']:.0%} hold a ship, {s['whole_per_crop']:.2f} whole and "
          f"{s['cut_per_crop']:.2f} cut ships per crop, {s['whole_long_per_crop']:.3f} whole "
          f"ships >= {s['long_px']:g} px per crop")  # fmt: skip


if __name__ == "__main__":
    main()

"""Ship detection through ``predict`` on a raster of real HRSID tiles, two models in one run.

    python benchmarks/ships.py --model old=runs/old_ships.onnx --model ships

The raster: the six held-out HRSID mini tiles (P0007, P0015; Wei et al. 2020, GPL-3.0) laid
side by side, 3 x 2, and repeated ``--repeat`` times each way (2: 4,800 x 3,200 px, 15 Mpx), as
1 m amplitude in a GeoTIFF (DN / 255, DN 0 floored at half a DN, as the held-out table
reads them). Each model runs ``predict`` with its own defaults (tile, overlap, NMS, boxes
fitted to hulls), in interleaved rounds; printed: wall time per round and model, ships found,
each model's time over the first one's (per round, and of the best rounds), and the share of
its wall time spent fitting boxes to hulls. What it answers: what a model's tile and settings
cost per pixel, measured in one run on this noisy machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ("P0007", "P0015")


def raster(folder: Path, data: Path, repeat: int) -> Path:
    """The held-out tiles as one 1 m amplitude GeoTIFF."""
    from PIL import Image

    from sarmae_train.heldout_ships import write_tile

    images = sorted(p for p in (data / "hrsid_mini" / "mini_test" / "images").glob("*.jpg")
                    if p.name.startswith(HELD_OUT))  # fmt: skip
    if len(images) < 6:
        raise SystemExit(f"error: {data} lacks the six held-out HRSID mini tiles (P0007, P0015)")
    dn = [np.asarray(Image.open(p).convert("L"), np.float32) for p in images[:6]]
    mosaic = np.block([dn[:3], dn[3:]])
    mosaic = np.tile(mosaic, (repeat, repeat))
    return write_tile(folder / "hrsid.tif", np.maximum(mosaic / 255, 1 / 510), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        action="append",
        required=True,
        help="LABEL=MODEL or MODEL (bundled name, .onnx, checkpoint, cfar)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="mosaic repeats each way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()

    import sarmae_core

    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    seconds: dict[str, list[float]] = {label: [] for label in models}
    fitting: dict[str, list[float]] = {label: [] for label in models}  # fit_boxes_to_hulls, s
    found: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tif = raster(Path(tmp), args.data, args.repeat)
        import rasterio

        with rasterio.open(tif) as ds:
            w, h = ds.width, ds.height
        print(f"raster {w} x {h} px at 1 m ({w * h / 1e6:.1f} Mpx), {args.rounds} rounds")
        for _ in range(args.rounds):
            for label, model in models.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = sarmae_core.predict(tif, model=model, output=Path(tmp) / f"{label}.gpkg",
                                              units="amplitude", overwrite=True)  # fmt: skip
                seconds[label].append(time.perf_counter() - t0)
                fitting[label].append(res.summary.timings.get("fit_hulls", 0.0))
                found[label] = int(res.summary.ship_count or 0)
    first = next(iter(models))
    print("| model | tile px | wall s per round | best | ships | time / " + first + " | "
          "fitting boxes to hulls, share of wall |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    from sarmae_core.inference.model.backends import load_backend

    for label, model in models.items():
        s = seconds[label]
        tile = load_backend(model).info.tile_size
        per = [b / a for a, b in zip(seconds[first], s, strict=True)]
        print(f"| {label} | {tile} | {' '.join(f'{x:.1f}' for x in s)} | {min(s):.1f} | "
              f"{found[label]} | {min(s) / min(seconds[first]):.2f} (per round "
              f"{' '.join(f'{x:.2f}' for x in per)}) | "
              f"{sum(fitting[label]) / sum(s):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""onnxruntime's settings measured on this machine, for the defaults of ``OnnxBackend``.

    python benchmarks/onnxruntime_settings.py [--model water] [--rounds 3] [--predict 4096]

Input: tiles of the model's own size (512 px for the bundled Water model) cut from the real
Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db``
(contains modified Copernicus Sentinel data 2015), 32 of them. Each setting changes one thing
from onnxruntime's defaults (intra-op threads = physical cores, thread spinning on, all graph
optimisations, batch 8): intra-op threads 1 .. cores, spinning off, graph optimisation level
basic / extended, batch 1 / 4 / 16, and the model's weights stored as float16 or int8 matrix
products (``sarmae export --weights float16`` / ``int8``; the plugin zip carries int8). Each
gets its own session; the settings are run in turn, ``--rounds`` times over (so a noisy
neighbour hits all of them alike), and each setting's best round is kept. Printed: ms per tile
and the ratio to the default, from this one run.

``--predict N`` also runs ``sarmae_core.predict`` on an N x N raster (the scene repeated, at
its 20 m) with the default session and with each candidate setting, in the same alternation:
the model runs a batch ahead of the blending and writing in a worker thread, and onnxruntime's
spinning threads compete with that work, which the model alone does not show.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from inference import SCENE, make_vrt, model_path  # the sibling benchmark script

DEFAULT = {"threads": None, "spinning": True, "level": "all", "batch": 8, "weights": "float32"}


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def tiles(n: int = 32, size: int = 256) -> np.ndarray:
    """``n`` real tiles of the scene (mirrored where the scene is smaller than a tile)."""
    import rasterio

    with rasterio.open(SCENE) as src:
        db = src.read(1).astype(np.float32)
    db[~np.isfinite(db) | (db < -60)] = np.nanmedian(db)
    reps = (size * 2 // db.shape[0] + 1, size * 4 // db.shape[1] + 1)
    big = np.tile(db, reps)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        r = rng.integers(0, big.shape[0] - size)
        c = rng.integers(0, big.shape[1] - size)
        out.append(big[r : r + size, c : c + size])
    return np.stack(out)[:, None]


def weight_variants(model: str, folder: Path) -> dict[str, str]:
    """The model file per weight storage: as given, float16-stored, int8 (dynamic)."""
    from sarmae_core.export.weights import write_compact

    src = model_path(model)
    out = {"float32": src}
    for weights in ("float16", "int8"):
        out[weights] = str(write_compact(src, folder / f"{weights}.onnx", weights))
    return out


def session(path: str, s: dict):
    from sarmae_core.inference.model.backends import OnnxBackend

    return OnnxBackend(path, device="cpu", threads=s["threads"], spinning=s["spinning"],
                       level=s["level"])  # fmt: skip


def settings(cores: int) -> dict[str, dict]:
    out = {"default (threads = cores, spinning, all, batch 8)": dict(DEFAULT)}
    for t in range(1, cores + 1):
        out[f"threads {t}"] = dict(DEFAULT, threads=t)
    out["spinning off"] = dict(DEFAULT, spinning=False)
    out["graph optimisation: basic"] = dict(DEFAULT, level="basic")
    out["graph optimisation: extended"] = dict(DEFAULT, level="extended")
    for b in (1, 4, 16):
        out[f"batch {b}"] = dict(DEFAULT, batch=b)
    out["weights stored as float16"] = dict(DEFAULT, weights="float16")
    out["weights int8 (dynamic quantisation)"] = dict(DEFAULT, weights="int8")
    return out


def time_model(be, x: np.ndarray, batch: int) -> float:
    """Seconds per tile for all of ``x`` in batches of ``batch``."""
    be.run(x[:batch])  # warm-up: first-call allocations
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        be.run(x[i : i + batch])
    return (time.perf_counter() - t) / len(x)


def time_predict(raster: Path, path: str, s: dict, out: Path) -> float:
    from sarmae_core.inference import predict

    be = session(path, s)
    t = time.perf_counter()
    predict(raster, be, {"class": out / "w.tif", "vector": out / "w.gpkg"},
            batch_size=s["batch"], overwrite=True)  # fmt: skip
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="water", help="bundled model name or .onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--predict", type=int, default=0, metavar="N",
                    help="also time predict on an N x N raster with each setting")  # fmt: skip
    args = ap.parse_args()
    cores = physical_cores()
    grid = settings(cores)
    from sarmae_core.contract.reader import read_model_info

    side = read_model_info(model_path(args.model)).tile_size
    x = tiles(size=side)
    variants_dir = tempfile.TemporaryDirectory()
    files = weight_variants(args.model, Path(variants_dir.name))
    sessions = {k: session(files[s["weights"]], s) for k, s in grid.items()}
    best = {k: float("inf") for k in grid}
    for _ in range(args.rounds):
        for k, s in grid.items():
            best[k] = min(best[k], time_model(sessions[k], x, s["batch"]))
    print(f"onnxruntime on {cores} physical cores, {args.model}, {len(x)} real {side} px tiles, "
          f"best of {args.rounds} rounds")  # fmt: skip
    base = best[next(iter(grid))]
    print(f"| {'setting':50s} | ms/tile | time vs default |")
    print(f"|{'-' * 52}|---------|-----------------|")
    for k, v in best.items():
        print(f"| {k:50s} | {1000 * v:7.1f} | {v / base:15.2f} |")
    if not args.predict:
        return
    del sessions
    with tempfile.TemporaryDirectory() as tmp:
        raster = make_vrt(args.predict, Path(tmp))
        whole = {k: float("inf") for k in grid}
        for _ in range(args.rounds):
            for k, s in grid.items():
                whole[k] = min(whole[k], time_predict(raster, files[s["weights"]], s, Path(tmp)))
    print(f"\npredict on {args.predict} x {args.predict} px (20 m), class raster + polygons, "
          f"best of {args.rounds}")  # fmt: skip
    print(f"| {'setting':50s} | wall s | time vs default |")
    print(f"|{'-' * 52}|--------|-----------------|")
    base = whole[next(iter(grid))]
    for k, v in whole.items():
        print(f"| {k:50s} | {v:6.1f} | {v / base:15.2f} |")


if __name__ == "__main__":
    main()

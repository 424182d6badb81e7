"""Scenes per second of ``predict_many`` with 1 and 2 Dask workers, and the Dask path's overhead.

    python benchmarks/many.py                 # 8 scenes of 536 x 434 px, bundled water model
    python benchmarks/many.py --scenes 16 --workers 1 2 4
    python benchmarks/many.py --repeat 16     # 8 scenes of 4288 x 3472 px (the README's figure)

Input: the real Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db`` (Contains modified
Copernicus Sentinel data 2015) tiled 2 x 2 (``--repeat``) and shifted by a few columns per
copy, so that every scene is distinct, written to a temporary folder (nothing is written to
the repository).
Model: the bundled ``water`` ONNX model, one onnxruntime thread per scene.

Printed: for a plain loop of ``predict`` in this process (one warm session, one thread) and for
``predict_many`` on a fresh LocalCluster of N worker processes: wall seconds (cluster start
included), scenes per second, the speedup over one worker (goal >= 1.7x with 2 workers on 2
free cores) and the overhead of the Dask path with 1 worker over the plain loop (goal <= 10 %).
Other processes on the machine (training) lower the speedup: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio

from sarmae_core.inference.many import predict_many
from sarmae_core.inference.model.backends import BUNDLED_DIR, OnnxBackend
from sarmae_core.inference.predict import predict

S1 = Path(__file__).resolve().parents[1] / "tests/fixtures/s1_vv_db"
SCENE = S1 / "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"


def make_scenes(folder: Path, n: int, repeat: int = 2) -> list[Path]:
    with rasterio.open(SCENE) as ds:
        db, profile, tags = ds.read(1), ds.profile, ds.tags(1)
    big = np.tile(db, (repeat, repeat))
    profile.update(width=big.shape[1], height=big.shape[0])
    profile.pop("blockysize", None)
    paths = []
    for i in range(n):
        path = folder / f"scene{i:02d}.tif"
        with rasterio.open(path, "w", **profile) as out:
            out.write(np.roll(big, 13 * i, axis=1), 1)
            out.update_tags(1, **tags)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2,
                        help="each scene is the real one tiled repeat x repeat")  # fmt: skip
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "scenes").mkdir()
        scenes = make_scenes(root / "scenes", args.scenes, args.repeat)
        model = BUNDLED_DIR / "water.onnx"
        session = OnnxBackend(model, device="cpu", threads=1)
        t = time.perf_counter()
        for i, scene in enumerate(scenes):
            predict(scene, session, root / f"loop{i}.gpkg", job="water")
        loop = time.perf_counter() - t
        print(f"plain loop     : {loop:7.1f} s  {len(scenes) / loop:6.2f} scenes/s")
        seconds = {}
        for n in args.workers:
            t = time.perf_counter()
            r = predict_many(root / "scenes", root / f"dask{n}", "water", workers=n)
            seconds[n] = time.perf_counter() - t
            assert not r.of("failed"), r
            speedup = seconds[min(seconds)] / seconds[n]
            print(f"dask {n} worker(s): {seconds[n]:7.1f} s  {len(scenes) / seconds[n]:6.2f} "
                  f"scenes/s  speedup {speedup:.2f}x over {min(seconds)} worker(s)")  # fmt: skip
        if 1 in seconds:
            overhead = 100 * (seconds[1] / loop - 1)
            print(f"overhead of the Dask path with 1 worker: {overhead:+.1f} %")


if __name__ == "__main__":
    main()

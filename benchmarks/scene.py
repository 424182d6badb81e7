"""The main job at full scale: the bundled Water model over a Sentinel-1 IW GRD sized raster.

    python benchmarks/scene.py [--width 25000 --height 17000 --pixel 10] [--model water ...]
    python benchmarks/scene.py --width 4096 --height 4096 --geodeep  # 4k, and GeoDeep on it
    python benchmarks/scene.py --min-area 500  # polygons as the dock's default makes them
    python benchmarks/scene.py --threads 1  # the model on one core, the other left to the rest

A GRD scene is about 25,000 x 17,000 pixels at 10 m. The raster is a VRT repeating the real
Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db`` (contains modified Copernicus Sentinel data
2015) at that size and pixel spacing, in a temporary folder. ``predict`` reads it at the pixel
size the model's metadata asks for (a model trained for one 20 m resolution gets the 10 m raster
resampled on the fly; one trained for 10-20 m reads it as it is). One run per ``--model`` (each
in a fresh process, in the order given) writes the water mask GeoTIFF and the water polygons;
printed per model: wall time, megapixels per second (of the input raster and at the model's
resolution), peak resident memory, the time of each stage (setup, read and resample, model,
blend, regrid back to the input's grid, classify and write, overviews, polygonise; the model
runs a batch ahead in a worker thread and the polygons are traced strip by strip in another as
the map is made, so stages overlap and add up to more than the wall time), and **wall time /
bare model**: the run's wall time over the model alone on the same tiles in the same batches,
read beforehand, in fresh processes just before and just after the run (their mean; how far
apart they are says how much this machine's speed moved meanwhile) (target <= 1.25 at GRD
size, <= 1.10 at 4096 x 4096). Then each model's wall time as a ratio to the first one's,
measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# the sibling benchmark script
from inference import child_model_alone, load_cpu_backend, make_vrt, model_path, peak_rss_mb

BATCH = 8
#: The stage table: (timings key, what it is)
STAGES = [
    ("setup", "setup (model load, raster checks)"),
    ("read", "read + resample to the model grid"),
    ("model", "model (worker thread)"),
    ("wait", "sweep waiting for the model"),
    ("blend", "blend overlapping tiles"),
    ("regrid", "regrid to the input's grid"),
    ("write", "classify + write blocks"),
    ("finish", "overviews"),
    ("vectorise", "polygonise + write polygons (worker thread)"),
    ("vectorise_sieve", "  of which: sieve (with a minimum area)"),
    ("vectorise_trace", "  trace strips (GDALPolygonize, read back)"),
    ("vectorise_join", "  join pieces at strip seams"),
    ("vectorise_write", "  clean, measure, write the GeoPackage"),
    ("vectorise_other", "  seam bookkeeping, the rest"),
    ("vectorise_wait", "waiting for the polygons after the sweep"),
]


def child(
    raster: str, out: str, model: str, pixel: float, min_area_m2: float, threads: int | None
) -> None:
    from sarmae_core.inference import predict

    t = time.perf_counter()
    backend = model if threads is None else load_cpu_backend(model_path(model), threads)
    load_s = time.perf_counter() - t  # predict times its own load: counted as it counts it
    res = predict(raster, backend, {"class": f"{out}/water.tif", "vector": f"{out}/water.gpkg"},
                  batch_size=BATCH, overwrite=True, min_area_m2=min_area_m2)  # fmt: skip
    from sarmae_core.contract.reader import read_model_info
    from sarmae_core.inference.scene.source import model_pixel_size

    s = res.summary
    read_at = model_pixel_size(pixel, pixel, read_model_info(model_path(model)))
    model_m = pixel if read_at is None else read_at[0]
    timings = dict(s.timings)
    timings["setup"] = timings.get("setup", 0.0) + load_s
    # stitch holds regrid and write; blend is the rest of it
    timings["blend"] = timings["stitch"] - timings.get("regrid", 0.0) - timings.get("write", 0.0)
    print(json.dumps({"wall_s": s.seconds + load_s, "model_s": s.model_seconds, "model_m": model_m,
                      "water_km2": s.water_area_km2, "timings": timings, "tiles": s.tiles_run,
                      "peak_rss_mb": peak_rss_mb(), "notes": res.notes}))  # fmt: skip


def bare(raster: str, model: str, threads: int | None) -> None:
    """The model alone on the tiles predict ran, in the same batches and threads."""
    print(json.dumps(child_model_alone(raster, model_path(model), BATCH, threads=threads)))


def geodeep_child(raster: str, model: str, pixel_m: str) -> None:
    """GeoDeep 0.9.13 (AGPL-3.0, a dev dependency, run here only to time it) on the same raster
    and ONNX file: its sliding window, mask merge, median filter, small-segment filter and
    polygons. Its preprocessing expects 8-bit RGB (scaled by 1/255), so it is bypassed: the
    tiles go to the model as read, as ours do. It reads at the pixel size ours read at
    (``pixel_m``): left to itself it would read at the one resolution in the model's metadata
    (the upper end of the Water model's 10-20 m, a quarter of the pixels of a 10 m scene)."""
    import geodeep
    import geodeep.segmentation
    import numpy as np

    geodeep.segmentation.preprocess = lambda tile: np.ascontiguousarray(tile[None], np.float32)
    t = time.perf_counter()
    geodeep.run(raster, model_path(model), output_type="geojson", resolution=100 * float(pixel_m))
    print(json.dumps({"wall_s": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25000)
    ap.add_argument("--height", type=int, default=17000)
    ap.add_argument("--pixel", type=float, default=10.0, help="pixel spacing in metres")
    ap.add_argument("--model", action="append", help="model name or .onnx (default: water)")
    ap.add_argument(
        "--geodeep",
        action="store_true",
        help="also time GeoDeep on the same raster and model (the first --model)",
    )
    ap.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        help="predict's min_area_m2 (the dock's default is 500 m2: the map is sieved before "
        "tracing, so specks are never traced); default 0, predict's and the CLI's default",
    )
    ap.add_argument(
        "--threads",
        type=int,
        help="onnxruntime threads for the run and the bare model (default: predict's, one per "
        "core); fewer than the cores leaves a core to reading, blending and the polygons",
    )
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--geodeep-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--bare", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        raster, out, model, pixel, min_area = args.child
        child(raster, out, model, float(pixel), float(min_area), args.threads)
        return
    if args.bare:
        bare(*args.bare, args.threads)
        return
    if args.geodeep_child:
        geodeep_child(*args.geodeep_child)
        return
    models = args.model or ["water"]
    threads = [] if args.threads is None else ["--threads", str(args.threads)]
    walls, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        vrt = make_vrt(args.width, Path(tmp), height=args.height, pixel_m=args.pixel)
        for model in models:
            # the bare model just before and just after the run: this machine's speed drifts
            # by up to a quarter within minutes, and the spread of the two says by how much
            before = spawn("--bare", str(vrt), model, *threads)["model_alone_s"]
            f = spawn("--child", str(vrt), tmp, model, str(args.pixel), str(args.min_area),
                      *threads)  # fmt: skip
            after = spawn("--bare", str(vrt), model, *threads)["model_alone_s"]
            f["bare_s"] = (before + after) / 2
            f["bare_spread"] = abs(after - before) / min(before, after)
            f["bare_before_s"], f["bare_after_s"] = before, after
            walls.append(f["wall_s"])
            runs.append(f)
            report(model, f, args)
        if args.geodeep:
            g = spawn("--geodeep-child", str(vrt), models[0], str(runs[0]["model_m"]))
            print(f"GeoDeep, same raster, model and {runs[0]['model_m']:g} m pixels: "
                  f"{g['wall_s']:.1f} s wall, peak resident "
                  f"memory {g['peak_rss_mb']:.0f} MB; GeoDeep / {models[0]} wall time: "
                  f"{g['wall_s'] / walls[0]:.2f}x (target >= 1.5)")  # fmt: skip
    for model, wall in zip(models[1:], walls[1:], strict=True):
        print(f"wall time {model} / {models[0]}: {wall / walls[0]:.2f}x (same run)")


def spawn(*args: str) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(args[:1])} run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def report(model: str, f: dict, args: argparse.Namespace) -> None:
    mpx_in = args.width * args.height / 1e6
    # pixels_processed counts the input's grid; the model saw the raster at its own pixel size
    f["mpx_model"] = mpx_in * (args.pixel / f["model_m"]) ** 2
    print(f"{model} on {args.width} x {args.height} px at {args.pixel:g} m "
          f"({mpx_in:.0f} Mpx; {f['mpx_model']:.0f} Mpx at the {f['model_m']:g} m the model "
          f"read); polygons of at least {args.min_area:g} m2; onnxruntime threads: "
          f"{args.threads or 'one per core'}")  # fmt: skip
    print(f"  wall {f['wall_s']:.0f} s: {mpx_in / f['wall_s']:.2f} Mpx/s of input, "
          f"{f['mpx_model'] / f['wall_s']:.2f} Mpx/s at model resolution; "
          f"model {100 * f['model_s'] / f['wall_s']:.0f} % of the time")  # fmt: skip
    print(f"  peak resident memory {f['peak_rss_mb']:.0f} MB; water {f['water_km2']:.0f} km2")
    print(f"  {'stage':44s} {'s':>8s} {'% of wall':>10s}")
    for key, name in STAGES:
        if key in f["timings"]:
            s = f["timings"][key]
            print(f"  {name:44s} {s:8.1f} {100 * s / f['wall_s']:9.0f}%")
    print(f"  {'wall':44s} {f['wall_s']:8.1f}")
    print(
        f"  bare model on the same {f['tiles']} tiles: {f['bare_s']:.1f} s (the mean of "
        f"{f['bare_before_s']:.1f} s just before the run and {f['bare_after_s']:.1f} s just "
        f"after: the machine's speed moved {100 * f['bare_spread']:.0f} % meanwhile); "
        f"wall time / bare model: {f['wall_s'] / f['bare_s']:.2f}x"
    )
    for note in f["notes"]:
        print(f"  note: {note}")


if __name__ == "__main__":
    main()

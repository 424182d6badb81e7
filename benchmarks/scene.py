"""The main job at full scale: the bundled Water model over a Sentinel-1 IW GRD sized raster.

    python benchmarks/scene.py [--width 25000 --height 17000 --pixel 10] [--model water ...]

A GRD scene is about 25,000 x 17,000 pixels at 10 m. The raster is a VRT repeating the real
Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db`` (contains modified Copernicus Sentinel data
2015) at that size and pixel spacing, in a temporary folder. ``predict`` reads it at the pixel
size the model's metadata asks for (a model trained for one 20 m resolution gets the 10 m raster
resampled on the fly; one trained for 10-20 m reads it as it is). One run per ``--model`` (each
in a fresh process, in the order given) writes the water mask GeoTIFF and the water polygons;
printed per model: wall time, megapixels per second (of the input raster and at the model's
resolution), the model's share of the time, peak resident memory; then each model's wall time
as a ratio to the first one's, measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from inference import make_vrt, peak_rss_mb  # the sibling benchmark script


def child(raster: str, out: str, model: str, pixel: float) -> None:
    from sarmae_core.inference import predict

    res = predict(raster, model, {"class": f"{out}/water.tif", "vector": f"{out}/water.gpkg"},
                  batch_size=8, overwrite=True)  # fmt: skip
    from sarmae_core.export.reader import read_model_info
    from sarmae_core.inference.backends import resolve_model_path
    from sarmae_core.inference.source import model_pixel_size

    s = res.summary
    read_at = model_pixel_size(pixel, pixel, read_model_info(resolve_model_path(res.model)))
    model_m = pixel if read_at is None else read_at[0]
    print(json.dumps({"wall_s": s.seconds, "model_s": s.model_seconds, "model_m": model_m,
                      "water_km2": s.water_area_km2,
                      "peak_rss_mb": peak_rss_mb(), "notes": res.notes}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25000)
    ap.add_argument("--height", type=int, default=17000)
    ap.add_argument("--pixel", type=float, default=10.0, help="pixel spacing in metres")
    ap.add_argument("--model", action="append", help="model name or .onnx (default: water)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        raster, out, model, pixel = args.child
        child(raster, out, model, float(pixel))
        return
    models = args.model or ["water"]
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        vrt = make_vrt(args.width, Path(tmp), height=args.height, pixel_m=args.pixel)
        for model in models:
            r = subprocess.run(
                [sys.executable, __file__, "--child", str(vrt), tmp, model, str(args.pixel)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            f = json.loads(r.stdout.strip().splitlines()[-1])
            walls.append(f["wall_s"])
            report(model, f, args)
    for model, wall in zip(models[1:], walls[1:], strict=True):
        print(f"wall time {model} / {models[0]}: {wall / walls[0]:.2f}x (same run)")


def report(model: str, f: dict, args: argparse.Namespace) -> None:
    mpx_in = args.width * args.height / 1e6
    # pixels_processed counts the input's grid; the model saw the raster at its own pixel size
    f["mpx_model"] = mpx_in * (args.pixel / f["model_m"]) ** 2
    print(f"{model} on {args.width} x {args.height} px at {args.pixel:g} m "
          f"({mpx_in:.0f} Mpx; {f['mpx_model']:.0f} Mpx at the {f['model_m']:g} m the model "
          "read)")  # fmt: skip
    print(f"  wall {f['wall_s']:.0f} s: {mpx_in / f['wall_s']:.2f} Mpx/s of input, "
          f"{f['mpx_model'] / f['wall_s']:.2f} Mpx/s at model resolution; "
          f"model {100 * f['model_s'] / f['wall_s']:.0f} % of the time")  # fmt: skip
    print(f"  peak resident memory {f['peak_rss_mb']:.0f} MB; water {f['water_km2']:.0f} km2")
    for note in f["notes"]:
        print(f"  note: {note}")


if __name__ == "__main__":
    main()

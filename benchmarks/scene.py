"""The main job at full scale: the bundled Water model over a Sentinel-1 IW GRD sized raster.

    python benchmarks/scene.py [--width 25000 --height 17000 --pixel 10]

A GRD scene is about 25,000 x 17,000 pixels at 10 m. The raster is a VRT repeating the real
Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db`` (contains modified Copernicus Sentinel data
2015) at that size and pixel spacing, in a temporary folder. The bundled model works at 20 m, so
``predict`` resamples on the fly as it would for a real 10 m GRD. One run in a fresh process
writes the water mask GeoTIFF and the water polygons; printed: wall time, megapixels per second
(of the input raster and at the model's resolution), the model's share of the time, and peak
resident memory.
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


def child(raster: str, out: str) -> None:
    from sarmae_core.inference import predict

    res = predict(raster, "water", {"class": f"{out}/water.tif", "vector": f"{out}/water.gpkg"},
                  batch_size=8, overwrite=True)  # fmt: skip
    from sarmae_core.export.reader import read_model_info
    from sarmae_core.inference.backends import resolve_model_path

    s = res.summary
    model_m = read_model_info(resolve_model_path(res.model)).resolution_m
    print(json.dumps({"wall_s": s.seconds, "model_s": s.model_seconds, "model_m": model_m,
                      "water_km2": s.water_area_km2,
                      "peak_rss_mb": peak_rss_mb(), "notes": res.notes}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25000)
    ap.add_argument("--height", type=int, default=17000)
    ap.add_argument("--pixel", type=float, default=10.0, help="pixel spacing in metres")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        vrt = make_vrt(args.width, Path(tmp), height=args.height, pixel_m=args.pixel)
        r = subprocess.run([sys.executable, __file__, "--child", str(vrt), tmp],
                           capture_output=True, text=True, check=True)  # fmt: skip
        f = json.loads(r.stdout.strip().splitlines()[-1])
    mpx_in = args.width * args.height / 1e6
    # pixels_processed counts the input's grid; the model saw the raster at its own pixel size
    f["mpx_model"] = mpx_in * (args.pixel / (f["model_m"] or args.pixel)) ** 2
    print(f"bundled water model on {args.width} x {args.height} px at {args.pixel:g} m "
          f"({mpx_in:.0f} Mpx; {f['mpx_model']:.0f} Mpx at the model's resolution)")  # fmt: skip
    print(f"  wall {f['wall_s']:.0f} s: {mpx_in / f['wall_s']:.2f} Mpx/s of input, "
          f"{f['mpx_model'] / f['wall_s']:.2f} Mpx/s at model resolution; "
          f"model {100 * f['model_s'] / f['wall_s']:.0f} % of the time")  # fmt: skip
    print(f"  peak resident memory {f['peak_rss_mb']:.0f} MB; water {f['water_km2']:.0f} km2")
    for note in f["notes"]:
        print(f"  note: {note}")


if __name__ == "__main__":
    main()

"""The polygon stage alone at Sentinel-1 GRD width: a water map traced strip by strip, joined
at the seams, cleaned and written, by step; and the seam join against GEOS's union.

    python benchmarks/polygons.py                     # 25,000 x 4,096 px, the dock's 500 m2
    python benchmarks/polygons.py --min-area 0        # every speck traced (the API's default)

The map: the bundled Water model's class map of the real Sentinel-1 VV dB scene of
``tests/fixtures/s1_vv_db`` (contains modified Copernicus Sentinel data 2015), made once by
``predict`` on a 4096 x 4096 VRT repeating it at 10 m, then mirrored side by side to
``--width`` (a GRD scene is about 25,000 px wide; a strip is a few hundred rows of it). The
polygons are made as ``predict`` makes them (:class:`PolygonProduct`: a worker thread fed the
rows in chunks, a GeoPackage written in a temporary folder), with ``--min-area`` as the dock's.

Printed, per interleaved round: wall and CPU time of the polygon stage, and its steps (sieve,
trace, join, clean and write, the rest), as ``benchmarks/scene.py`` prints them inside the GRD
run; then the joins alone: every region's pieces as the tracer hands them over, joined by the
seam join (what the product uses) and by GEOS's union of the shells (the fallback, and what
joined them before), best of the rounds, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from inference import make_vrt  # the sibling benchmark script

CHUNK = 256  # rows handed over at a time, as the sweep hands finished rows down


def water_map(folder: Path, width: int, height: int):
    """The class map (uint8), its transform and CRS: the model's 4096 x 4096 map mirrored."""
    import rasterio

    from sarmae_core.inference import predict

    size = min(4096, max(width, height))
    tif = folder / "water.tif"
    predict(str(make_vrt(size, folder, pixel_m=10.0)), "water", {"class": str(tif)},
            batch_size=8)  # fmt: skip
    with rasterio.open(tif) as ds:
        tile, transform, wkt = ds.read(1), ds.transform, ds.crs.to_wkt()
    tile = (tile == 1).astype(np.uint8)  # water; background and nodata are not traced
    side = np.concatenate([tile, tile[:, ::-1]], axis=1)
    row = np.tile(side, (1, -(-width // side.shape[1])))[:, :width]
    down = np.concatenate([row, row[::-1]], axis=0)
    return np.tile(down, (-(-height // down.shape[0]), 1))[:height].copy(), transform, wkt


def run_product(fio, classes, transform, wkt, min_area: float, folder: Path) -> dict:
    """The polygon stage as predict runs it; its wall and CPU time and its steps."""
    from sarmae_core.inference.geo.geodesy import EqualArea, pixel_size_m
    from sarmae_core.inference.geo.georef import Transform
    from sarmae_core.inference.products.vectorize import PolygonOptions, PolygonProduct

    h, w = classes.shape
    t, crs = Transform.of(transform), fio.parse_crs(wkt)
    path = folder / "water.gpkg"
    path.unlink(missing_ok=True)
    out = fio.feature_writer(path, "water", crs, [("class", "int"), ("class_name", "str"),
                                                  ("area_m2", "real")])  # fmt: skip
    product = PolygonProduct(fio, out, ["background", "water"], t, w, h,
                             pixel_size_m(fio, crs, t, w, h), EqualArea.for_grid(fio, crs, t, w, h),
                             PolygonOptions(min_area_m2=min_area), lambda: None)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    for row in range(0, h, CHUNK):
        product(row, classes[row : row + CHUNK])
    product.finish()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "features": out.count, "stages": product.stages}  # fmt: skip


def region_pieces(fio, classes, min_area: float, transform, wkt) -> tuple[list, int]:
    """Every region's pieces as the strip tracer hands them to its join, and the strip rows."""
    from sarmae_core.inference.geo.geodesy import EqualArea
    from sarmae_core.inference.geo.georef import Transform
    from sarmae_core.inference.products.strips import StripTracer
    from sarmae_core.inference.products.vectorize import PolygonOptions, sieve_thresholds

    class Collecting(StripTracer):
        def join(self, pieces):
            if len(pieces) > 1:
                collected.append(pieces)
            return super().join(pieces)

    collected: list = []
    h, w = classes.shape
    t, crs = Transform.of(transform), fio.parse_crs(wkt)
    remove, fill = sieve_thresholds(EqualArea.for_grid(fio, crs, t, w, h), t, w, h,
                                    PolygonOptions(min_area_m2=min_area))  # fmt: skip
    tracer = Collecting(fio, w, h, lambda p, v: None, lambda: None, remove, fill)
    for row in range(0, h, CHUNK):
        tracer(row, classes[row : row + CHUNK])
    tracer.finish()
    return collected, tracer.strip_rows


def time_joins(fio, collected: list, strip_rows: int) -> tuple[float, float]:
    """Seconds to join every region's pieces: the seam join, and GEOS's union of the shells."""
    from sarmae_core.inference.products.seams import join_polygons, meeting_rows

    seams = [meeting_rows(pieces, strip_rows) for pieces in collected]
    t = time.perf_counter()
    for pieces, rows in zip(collected, seams, strict=True):
        assert join_polygons(pieces, rows) is not None
    exact = time.perf_counter() - t
    t = time.perf_counter()
    for pieces in collected:
        fio.union([[p[0]] for p in pieces])
    return exact, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25000)
    ap.add_argument("--height", type=int, default=4096)
    ap.add_argument("--min-area", type=float, default=500.0,
                    help="drop polygons under this many m2, sieved before tracing (the dock's "
                    "default, 500; 0 traces every speck)")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default=None, help="IO backend (gdal or rasterio)")
    args = ap.parse_args()

    from sarmae_core.inference.io import raster_io

    fio = raster_io.get(args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        classes, transform, wkt = water_map(folder, args.width, args.height)
        h, w = classes.shape
        print(f"water map {w} x {h} px at 10 m ({classes.size / 1e6:.0f} Mpx, "
              f"{100 * classes.mean():.0f} % water); polygons of at least {args.min_area:g} m2; "
              f"IO backend {fio.name}")  # fmt: skip
        collected, strip_rows = region_pieces(fio, classes, args.min_area, transform, wkt)
        steps = ["sieve", "trace", "join", "write", "other"]
        print("| round | wall s | CPU s | ns / px | features | " + " | ".join(steps) + " |")
        print("|---" * (5 + len(steps)) + "|")
        joins = []
        for k in range(args.rounds):
            r = run_product(fio, classes, transform, wkt, args.min_area, folder)
            cells = " | ".join(f"{r['stages'][s]:.2f}" for s in steps)
            ns = 1e9 * r["wall_s"] / classes.size
            print(f"| {k + 1} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {ns:.0f} | "
                  f"{r['features']} | {cells} |")  # fmt: skip
            joins.append(time_joins(fio, collected, strip_rows))
        if not collected:
            print("joins alone: no region crosses a strip seam (the map is one strip high)")
            return
        exact = min(j[0] for j in joins)
        overlay = min(j[1] for j in joins)
        n = sum(len(p) for p in collected)
        print(f"joins alone, {len(collected)} regions of {n} pieces (best of {args.rounds}): "
              f"seam join {exact:.2f} s, GEOS union of the shells {overlay:.2f} s; "
              f"GEOS / seam join: {overlay / exact:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

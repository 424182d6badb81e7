"""Figures of the sliding-window inference engine on large rasters, on this machine's CPU.

    python benchmarks/inference.py                  # 4k: both backends, 3 repeats; 16k: ORT once
    python benchmarks/inference.py --sizes 4096     # about 6 minutes on 2 cores
    python benchmarks/inference.py --sizes 4096 --threads 1   # the backends' own speed ratio
    python benchmarks/inference.py --sizes 4096 16384 --products class --repeats 1 \
        --torch-sizes --alone-sizes                 # memory of the streamed sweep alone
    python benchmarks/inference.py --model random   # untrained head: worst case for polygons
    python benchmarks/inference.py --model random --min-area 2000 --fill-holes 2000 \
        --torch-sizes --alone-sizes --repeats 1     # the same with the mask sieved first

A 16k run takes about 8 minutes on 2 cores (~7000 tiles of 256 px).

Input: the real Sentinel-1 VV dB scene of ``tests/fixtures/s1_vv_db`` (pyroSAR test data,
Contains modified Copernicus Sentinel data 2015) tiled into VRTs of 4096 x 4096 and
16384 x 16384 px in a temporary folder (nothing is written to the repository). Model
(``--model``): ``water``, the bundled Water model (the ``sarmae_vit_tiny`` preset with a
segmentation head, 256 px tiles) with, for the torch backend, the checkpoint it was exported
from (``runs/bundled/water/model.safetensors``, made by ``training/recipes/water.sh``; without
it torch is not run); or ``random``, the same architecture with random weights (seeded; speed
does not depend on training) exported with ``sarmae_core.export.onnx.export_onnx`` and saved
as a checkpoint. An untrained head calls ~70 % of the scene water in speckle-sized pieces: a
worst case for vectorising, which real water maps are far from. Every run is
``sarmae_core.predict`` writing a class GeoTIFF and water polygons (``--products``), in a fresh
process, so that its peak resident memory is its own. Both backends run on the CPU with the
same number of threads (``--threads``, default torch's).

Printed: megapixels per second per backend and size (target: onnxruntime >= 1.2x torch), and
the ratio of the two models alone on the same tiles; peak resident memory (target: 16k <= 1.3x
4k); the share of wall time spent outside the model (reading, blending, writing, vectorising),
against the model alone run on the same tiles in the same batches (target: <= 15 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO / "tests/fixtures/s1_vv_db/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"
WATER_ONNX = REPO / "sarmae_core/models/bundled/water.onnx"
WATER_CKPT = REPO / "runs/bundled/water/model.safetensors"


def make_vrt(
    size: int, folder: Path, height: int | None = None, pixel_m: float | None = None
) -> Path:
    """A ``size`` x ``height`` (default square) VRT that repeats the scene (EPSG:32631, nodata
    -99), with the scene's 20 m pixels or ``pixel_m``."""
    import rasterio

    height = height or size
    with rasterio.open(SCENE) as src:
        w, h, t, wkt = src.width, src.height, src.transform, src.crs.to_wkt()
    px = pixel_m or t.a
    sources = []
    for r in range(0, height, h):
        for c in range(0, size, w):
            cw, ch = min(w, size - c), min(h, height - r)
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="0">{SCENE}</SourceFilename>'
                f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{cw}" '
                f'ySize="{ch}"/><DstRect xOff="{c}" yOff="{r}" xSize="{cw}" ySize="{ch}"/>'
                "</SimpleSource>"
            )
    xml = (
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{height}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{t.c}, {px}, 0, {t.f}, 0, {-px}</GeoTransform>"
        '<VRTRasterBand dataType="Float32" band="1"><NoDataValue>-99</NoDataValue>'
        + "".join(sources)
        + "</VRTRasterBand></VRTDataset>"
    )
    path = folder / f"s1_VV_db_tiled_{size}x{height}.vrt"  # the name says VV and dB, as the scene's
    path.write_text(xml)
    return path


def make_models(folder: Path) -> tuple[Path, Path]:
    """The tiny segmentation model with random weights as ONNX and as a checkpoint."""
    import torch

    from sarmae_core.export.onnx import export_onnx
    from sarmae_core.models.checkpoint import save_checkpoint
    from sarmae_core.models.heads import SegmentationModel
    from sarmae_core.models.registry import make_config

    torch.manual_seed(0)
    cfg = make_config("sarmae_vit_tiny")
    cfg.data.resolution = 20.0  # the scene's pixel size: no resampling in the figures
    model = SegmentationModel(cfg, num_classes=2, class_names=["background", "water"]).eval()
    onnx_path, ckpt = folder / "water_tiny.onnx", folder / "water_tiny.safetensors"
    export_onnx(model, onnx_path, name="water-bench")
    save_checkpoint(model, ckpt, extra=model.checkpoint_extras())
    return onnx_path, ckpt


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ``ru_maxrss`` would include the parent's,
    which Linux carries across fork and exec)."""
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def model_path(model: str) -> str:
    """The ONNX file of a bundled model's name, or the file given."""
    from sarmae_core.inference.model.backends import resolve_model_path

    return model if model.endswith(".onnx") else str(resolve_model_path(model))


def load_cpu_backend(model: str, threads: int):
    """The model's backend on the CPU with ``threads`` threads (onnxruntime for .onnx files,
    torch for checkpoints)."""
    if model.endswith(".onnx"):
        from sarmae_core.inference.model.backends import OnnxBackend

        return OnnxBackend(model, device="cpu", threads=threads)
    import torch

    from sarmae_core.inference.model.backends import load_backend

    torch.set_num_threads(threads)
    return load_backend(model, backend="torch", device="cpu")


def child_predict(
    raster: str,
    model: str,
    out: str,
    batch: int,
    products: str,
    threads: int,
    min_area: float = 0.0,
    fill_holes: float = 0.0,
) -> dict:
    """One predict run; returns its figures and this process's peak resident memory."""
    from sarmae_core.inference import predict

    t = time.perf_counter()
    backend = load_cpu_backend(model, threads)  # made here to set its threads
    load_s = time.perf_counter() - t
    res = predict(raster, backend, out, products=tuple(products.split(",")), batch_size=batch,
                  overwrite=True, min_area_m2=min_area, fill_holes_m2=fill_holes)  # fmt: skip
    s = res.summary
    timings = dict(s.timings)
    timings["setup"] = timings.get("setup", 0.0) + load_s  # counted as predict counts it
    return {
        "backend": res.backend,
        "wall_s": s.seconds + load_s,
        "model_s_in_run": s.model_seconds,
        "mpx": s.pixels_processed / 1e6,
        "mpx_per_s": s.pixels_processed / 1e6 / (s.seconds + load_s),
        "tiles": s.tiles_run,
        "timings": timings,
        "peak_rss_mb": peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def child_model_alone(raster: str, model: str, batch: int, threads: int) -> dict:
    """The backend alone on the same tiles and batches as predict (tiles read beforehand)."""
    from sarmae_core.inference.geo.aoi import resolve_aoi
    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.notes import Notes
    from sarmae_core.inference.predict import GDAL_CACHE_MB, model_batch
    from sarmae_core.inference.scene.source import SarSource
    from sarmae_core.inference.sweep.engine import prepare_tile
    from sarmae_core.inference.sweep.windows import TileGrid

    notes = Notes()
    be = load_cpu_backend(model, threads)
    info = be.info
    batch = model_batch(be, batch, info.tile_size)  # predict's batches: large tiles fewer a call
    model_s, tiles = 0.0, 0
    fileio = raster_io.get(None)  # as predict: GDAL's bindings when they import, else rasterio
    with fileio.environment(GDAL_CACHE_MB), SarSource(raster, info, notes=notes,
                                                      fileio=fileio) as src:  # fmt: skip
        region = resolve_aoi(
            None, None, src.crs, src.transform, src.width, src.height, notes, src.fileio
        )
        grid = TileGrid(region.height, region.width, info.tile_size, info.tile_overlap)
        pending: list[np.ndarray] = []

        def run() -> float:
            x = np.stack(pending)
            t = time.perf_counter()
            be.run(x)
            pending.clear()
            return time.perf_counter() - t

        for tile in grid:
            data, valid = src.read(tile.row, tile.col, tile.height, tile.width)
            if valid.any():
                pending.append(prepare_tile(data, valid, grid.tile))
                tiles += 1
            if len(pending) == batch:
                model_s += run()
        if pending:
            model_s += run()
    return {"model_alone_s": model_s, "tiles": tiles}


def spawn(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, __file__, "--child", *args]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if run.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument(
        "--torch-sizes",
        type=int,
        nargs="*",
        default=[4096],
        help="sizes also run with the torch backend (default: 4096)",
    )
    ap.add_argument(
        "--alone-sizes",
        type=int,
        nargs="*",
        default=[4096],
        help="sizes where the model also runs alone on the same tiles",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="interleaved repeats of each run up to 4096 px; medians are printed "
        "(shared CPUs vary by tens of per cent between runs)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--products", default="class,vector",
                    help="what predict writes (default: class,vector)")  # fmt: skip
    ap.add_argument("--model", choices=("water", "random"), default="water",
                    help="the bundled Water model (default) or random weights")  # fmt: skip
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads of both backends (default: torch's default)")  # fmt: skip
    ap.add_argument("--min-area", type=float, default=0.0,
                    help="predict's min_area_m2 (polygons; the mask is sieved first)")  # fmt: skip
    ap.add_argument("--fill-holes", type=float, default=0.0, help="predict's fill_holes_m2")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()  # fmt: skip
    if a.child:
        kind, *rest = a.child
        if kind == "predict":
            raster, model, out, batch, products, threads, min_area, fill = rest
            print(json.dumps(child_predict(raster, model, out, int(batch), products, int(threads),
                                           float(min_area), float(fill))))  # fmt: skip
        else:
            raster, model, batch, threads = rest
            print(json.dumps(child_model_alone(raster, model, int(batch), int(threads))))
        return

    import onnxruntime
    import torch

    from sarmae_core.contract.reader import read_model_info

    threads = a.threads or torch.get_num_threads()
    results: dict[tuple[int, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="sarmae-bench-") as tmp:
        folder = Path(tmp)
        if a.model == "water":
            onnx_path, ckpt = WATER_ONNX, (WATER_CKPT if WATER_CKPT.exists() else None)
        else:
            onnx_path, ckpt = make_models(folder)
        info = read_model_info(onnx_path)
        print(f"CPU: {os.cpu_count()} cores; torch {torch.__version__}, onnxruntime "
              f"{onnxruntime.__version__}, both on {threads} thread(s); model {a.model} "
              f"({info.preset}, {info.task}), tile {info.tile_size}, overlap "
              f"{info.tile_overlap}, batch {a.batch_size}; products: {a.products}; "
              f"min area {a.min_area:g} m2, fill holes {a.fill_holes:g} m2")  # fmt: skip
        if ckpt is None:
            print(f"torch not run: no checkpoint {WATER_CKPT.relative_to(REPO)} (made by "
                  "training/recipes/water.sh); --model random compares the backends")  # fmt: skip
        for size in a.sizes:
            vrt = make_vrt(size, folder)
            runs = [("onnxruntime", onnx_path)]
            if size in a.torch_sizes and ckpt is not None:
                runs.append(("torch", ckpt))
            for _ in range(a.repeats if size <= 4096 else 1):
                for name, model in runs:  # interleaved, so that slow spells hit both
                    out = folder / f"w_{size}.tif"
                    r = spawn("predict", str(vrt), str(model), str(out), str(a.batch_size),
                              a.products, str(threads), str(a.min_area),
                              str(a.fill_holes))  # fmt: skip
                    if size in a.alone_sizes:
                        r.update(spawn("alone", str(vrt), str(model), str(a.batch_size),
                                       str(threads)))  # fmt: skip
                    _report(size, name, r)
                    results.setdefault((size, name), []).append(r)
    med = {key: _median_run(rs) for key, rs in results.items()}
    print("\nMedians of the repeats (peak RSS: the largest):")
    for (size, name), r in med.items():
        _report(size, name, r)
    print()
    for size in a.sizes:
        if (size, "torch") not in results:
            continue
        ort_runs, torch_runs = results[size, "onnxruntime"], results[size, "torch"]
        pairs = list(zip(ort_runs, torch_runs, strict=True))  # run one after the other
        ratio = np.median([o["mpx_per_s"] / t["mpx_per_s"] for o, t in pairs])
        print(f"{size} px: onnxruntime / torch throughput = {ratio:.2f}x, median of "
              f"{len(pairs)} interleaved pairs (target >= 1.2x)")  # fmt: skip
        if all("model_alone_s" in r for r in ort_runs + torch_runs):
            alone = np.median([t["model_alone_s"] / o["model_alone_s"] for o, t in pairs])
            print(f"{size} px: model alone, torch time / onnxruntime time = {alone:.2f}x")
    if (4096, "onnxruntime") in med and (16384, "onnxruntime") in med:
        big, small = med[16384, "onnxruntime"], med[4096, "onnxruntime"]
        ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
        print(f"peak RSS 16k / 4k (onnxruntime) = {ratio:.2f}x (target <= 1.3x)")
    for (size, name), r in med.items():
        if "outside_share" in r:
            share, no_setup = 100 * r["outside_share"], 100 * r["outside_share_no_setup"]
            print(f"{size} px {name}: share of wall time outside the model, against the model "
                  f"alone: {share:.1f} % ({no_setup:.1f} % without loading the model) "
                  "(target <= 15 %)")  # fmt: skip


def _median_run(runs: list[dict]) -> dict:
    """One run of medians (times, speeds, shares) with the largest memory peak of ``runs``."""
    r = dict(runs[0])
    for k in ("wall_s", "model_s_in_run", "mpx_per_s", "model_alone_s", "outside_share",
              "outside_share_no_setup"):  # fmt: skip
        if k in r:
            r[k] = float(np.median([x[k] for x in runs]))
    r["timings"] = {k: float(np.median([x["timings"].get(k, 0.0) for x in runs]))
                    for k in r["timings"]}  # fmt: skip
    r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in runs)
    r["median"] = True
    return r


def _report(size: int, name: str, r: dict) -> None:
    t = r["timings"]
    setup = t.get("setup", 0.0)
    if "model_alone_s" in r:
        if not r.get("median"):  # a median run has the medians of its runs' shares
            r["outside_share"] = 1 - r["model_alone_s"] / r["wall_s"]
            r["outside_share_no_setup"] = 1 - r["model_alone_s"] / (r["wall_s"] - setup)
        alone = (f"model alone {r['model_alone_s']:6.1f} s, outside the model "
                 f"{100 * r['outside_share']:4.1f} % ({100 * r['outside_share_no_setup']:4.1f} % "
                 "without setup)")  # fmt: skip
    else:
        alone = "model alone not run"
    print(
        f"{size:>5} px {name:<11} {r['mpx_per_s']:5.2f} Mpx/s  wall {r['wall_s']:6.1f} s  "
        f"{alone}  (in-run model share {100 * r['model_s_in_run'] / r['wall_s']:4.1f} %)  "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB\n"
        f"      setup {setup:.1f} s, read {t['read']:.1f} s, stitch {t['stitch']:.1f} s, "
        f"write {t.get('write', 0):.1f} s, overviews {t.get('finish', 0):.1f} s, "
        f"vectorise {t.get('vectorise', 0):.1f} s"
        f"{'; torch imported' if r['torch_imported'] else ''}",
        flush=True,
    )


if __name__ == "__main__":
    main()

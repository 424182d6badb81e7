"""The benchmark scripts the README quotes run and print their tables (small settings here;
the figures come from the README's settings on an idle machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_pretraining_ratios_table():
    out = run("benchmarks/pretrain.py", "--ratios", "--preset", "sarmae_test", "--batch", "2",
              "--steps", "1", "--rounds", "1", "--threads", "1")  # fmt: skip
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "variant" not in ln]
    assert [r.split("|")[1].strip() for r in rows] == [
        "plain MAE", "MAE + SARE", "SARMAE (SARE + SARC), teacher every step",
        "SARMAE, teacher features cached",
    ]  # fmt: skip
    assert float(rows[0].split("|")[3]) == 1.0  # plain MAE against itself


def test_onnxruntime_settings_table_times_smaller_weights():
    out = run("benchmarks/onnxruntime_settings.py", "--rounds", "1")
    names = [ln.split("|")[1].strip() for ln in out.splitlines() if ln.startswith("| ")]
    assert "weights stored as float16" in names and "weights int8 (dynamic quantisation)" in names


def test_scene_benchmark_prints_stages_ratio_and_geodeep():
    """``benchmarks/scene.py`` at a small size: the stage table with the polygon worker, the
    wall time over the bare model, and GeoDeep timed on the same raster, model and pixels."""
    out = run("benchmarks/scene.py", "--width", "1024", "--height", "768", "--geodeep",
              "--min-area", "500")  # fmt: skip
    assert "polygons of at least 500 m2" in out
    assert "polygonise + write polygons (worker thread)" in out
    assert "join pieces at strip seams" in out and "trace strips (GDALPolygonize" in out
    assert "wall time / bare model:" in out and "just before the run" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("GeoDeep, same raster"))
    assert "10 m pixels" in line and float(line.split(": ")[-1].split("x")[0]) > 0


def test_scene_benchmark_with_the_model_on_fewer_threads_than_cores():
    """``--threads 1``: the run and both bare-model runs on one onnxruntime thread (the ratio
    with a core left to reading, blending and the polygons), the model's load in the wall time
    as predict counts it when it loads the model itself."""
    out = run("benchmarks/scene.py", "--width", "1024", "--height", "768", "--threads", "1")
    assert "onnxruntime threads: 1" in out
    setup = next(ln for ln in out.splitlines() if "setup (model load" in ln)
    assert float(setup.split()[-2]) > 0
    ratio = next(ln for ln in out.splitlines() if "wall time / bare model:" in ln)
    assert float(ratio.rsplit(": ", 1)[1].rstrip("x")) > 0


def test_inference_benchmark_prints_the_share_outside_the_model():
    """``benchmarks/inference.py`` (the README's rows on the time outside the model and on peak
    memory 16k / 4k) at small sizes: per-size wall, model alone and stages, and the ratios."""
    out = run("benchmarks/inference.py", "--sizes", "512", "1024", "--products",
              "class,vector", "--torch-sizes", "--alone-sizes", "512", "--repeats", "1",
              "--threads", "1")  # fmt: skip
    share = "512 px onnxruntime: share of wall time outside the model, against the model alone:"
    assert share in out
    medians = out.split("Medians of the repeats")[1]
    lines = [ln for ln in medians.splitlines() if " px onnxruntime " in ln and "wall" in ln]
    assert [ln.split()[0] for ln in lines] == ["512", "1024"]
    assert "model alone    " in lines[0] and "model alone not run" in lines[1]
    assert all("peak RSS" in ln for ln in lines) and "vectorise" in out


def test_many_scenes_benchmark_prints_speedup_and_overhead():
    """``benchmarks/many.py`` (the README's Dask row) with two small scenes and one worker."""
    out = run("benchmarks/many.py", "--scenes", "2", "--workers", "1", "--repeat", "1")
    assert "plain loop" in out and "dask 1 worker(s)" in out
    assert "overhead of the Dask path with 1 worker:" in out


def test_polygon_benchmark_prints_the_steps_and_both_joins():
    """``benchmarks/polygons.py`` (the README's row on the polygon stage alone) on a map a few
    strips high: the steps of each round, and the seam join against GEOS's union on the same
    regions' pieces."""
    out = run("benchmarks/polygons.py", "--width", "3000", "--height", "2500", "--rounds", "1")
    assert "| round | wall s | CPU s | ns / px | features | sieve | trace | join | write |" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("| 1 |"))
    assert int(row.split("|")[5]) > 1000  # features written
    line = next(ln for ln in out.splitlines() if ln.startswith("joins alone"))
    assert int(line.split(", ")[1].split(" regions")[0]) > 10
    assert float(line.split("GEOS / seam join: ")[1].rstrip("x")) > 0


def test_ships_benchmark_times_two_models_on_the_held_out_tiles():
    """``benchmarks/ships.py``: the bundled Ships model against CA-CFAR on the held-out HRSID
    tiles in one run, each model's tile and its time over the first one's."""
    out = run("benchmarks/ships.py", "--model", "cfar", "--model", "ships", "--repeat", "1",
              "--rounds", "1")  # fmt: skip
    assert "raster 2400 x 1600 px at 1 m" in out
    rows = [ln.split("|") for ln in out.splitlines() if ln.startswith("| ") and "tile px" not in ln]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("cfar", "512"), ("ships", "768")]
    assert rows[0][6].strip().startswith("1.00") and int(rows[1][5]) > 0
    # CFAR's boxes are its pixels; the model's are fitted to hulls, a small part of its time
    assert float(rows[0][7]) == 0.0 and 0.0 < float(rows[1][7]) < 0.5

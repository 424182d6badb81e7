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
    out = run("benchmarks/scene.py", "--width", "1024", "--height", "768", "--geodeep")
    assert "polygonise + write polygons (worker thread)" in out
    assert "wall time / bare model:" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("GeoDeep, same raster"))
    assert "10 m pixels" in line and float(line.split(": ")[-1].split("x")[0]) > 0

"""The README's many-scene command, run as written, with the bundled water model."""

from __future__ import annotations

import csv
import shlex
import subprocess
import sys
from pathlib import Path

import rasterio

from ..conftest import S1_VV_DB

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_command(start: str) -> list[str]:
    lines = [line for line in README.read_text().splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"the README lost its command {start!r}"
    return shlex.split(lines[0].split("#", 1)[0])


def test_readme_folder_command_maps_every_scene(tmp_path):
    args = _readme_command("sarmae predict water event_scenes")
    folder = tmp_path / args[3]
    folder.mkdir()
    with rasterio.open(S1_VV_DB) as ds:  # two tiles of the real scene, as two "scenes"
        profile = ds.profile
        for name, (row, col) in {"s1_a": (0, 0), "s1_b": (100, 60)}.items():
            window = rasterio.windows.Window(col, row, 150, 160)
            profile.update(width=150, height=160, transform=ds.window_transform(window))
            profile.pop("blockysize", None)
            with rasterio.open(folder / f"{name}.tif", "w", **profile) as out:
                out.write(ds.read(window=window))
                out.update_tags(1, **ds.tags(1))
    cmd = [sys.executable, "-m", "sarmae_core.cli", *args[1:]]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Dask dashboard: http" in r.stderr
    assert "2 scenes: 2 done" in r.stdout
    out = tmp_path / args[5]
    with open(out / "catalogue.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["scene"], r["status"]) for r in rows] == [("s1_a", "done"), ("s1_b", "done")]
    assert all(float(r["water_km2"]) > 0 for r in rows)  # the Camargue has water in both
    assert (out / "s1_a_water.gpkg").is_file() and (out / "s1_b_water.gpkg").is_file()

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "2 skipped" in again.stdout, again.stderr


def test_readme_flood_command_pairs_after_and_before_scenes(tmp_path):
    from ..inference.helpers import make_change_onnx, seg_info, to_epsg4326

    args = _readme_command("sarmae predict flood after_scenes")
    after, before = tmp_path / args[3], tmp_path / args[5]
    after.mkdir()
    before.mkdir()
    with rasterio.open(S1_VV_DB) as ds:  # a tile of the real scene after the event
        profile = ds.profile
        window = rasterio.windows.Window(0, 0, 150, 160)
        profile.update(width=150, height=160, transform=ds.window_transform(window))
        profile.pop("blockysize", None)
        data = ds.read(window=window)
        data[:, 60:120, 80:140] = -25.0  # a flooded field
        with rasterio.open(after / "s1_after.tif", "w", **profile) as out:
            out.write(data)
    to_epsg4326(S1_VV_DB, before / "s1_archive.tif")  # the whole scene, another CRS
    info = seg_info(class_names=["background", "flood"], polarisations=["VV", "VV"],
                    dates=["before", "after"], resolution_m=20.0,
                    normalization={"mean": [-12.0, -12.0], "std": [5.0, 5.0]})  # fmt: skip
    make_change_onnx(tmp_path / args[args.index("--model") + 1], info)
    cmd = [sys.executable, "-m", "sarmae_core.cli", *args[1:]]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / args[7] / "catalogue.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["scene"], r["status"]) for r in rows] == [("s1_after", "done")]
    assert rows[0]["before"].endswith("s1_archive.tif") and float(rows[0]["flood_km2"]) > 0.5

"""Issue 12, hostile inputs: no run destroys a file, every refusal is one clear line.

Each test is one finding of the audit, through the Python API and, where the CLI has the
option, through ``sarmae predict`` (in-process with click's runner; signals in a subprocess).
Every test runs under both IO backends (the autouse ``io_backend`` fixture).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from sarmae_core.cli import main as sarmae_main
from sarmae_core.errors import CheckpointError, ConfigError, InputError, RasterError
from sarmae_core.inference import OutputExistsError, predict
from sarmae_core.inference.geo.georef import Transform
from sarmae_core.inference.io.writers import sweep_stale

from .helpers import read, s1_db, write_raster

PRECIOUS = b"precious: an earlier result"


def cli(*args: str | Path) -> tuple[int, str, str]:
    """``sarmae ARGS`` in this process: (exit code, stdout, stderr); no traceback may escape."""
    result = CliRunner().invoke(sarmae_main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the test fails on it
    return result.exit_code, result.stdout, result.stderr


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def scene(out: Path, s1_db: Path) -> Path:
    """A copy of the real Sentinel-1 scene in the output folder, where a user keeps it."""
    return Path(shutil.copy(s1_db, out / "s.tif"))


# ---------------------------------------------------------------- 1. output = input
def test_no_output_may_be_the_input(scene: Path, out: Path, models) -> None:
    before = scene.read_bytes()
    (out / "link.tif").symlink_to(scene)
    spellings = [
        scene,
        out / "link.tif",
        out / "sub" / ".." / "s.tif",
        Path(os.path.relpath(scene)),
    ]
    (out / "sub").mkdir()
    for name in spellings:
        with pytest.raises(ConfigError, match="a file this run reads"):
            predict(scene, models["water"], {"vector": out / "w.gpkg", "class": name},
                    overwrite=True)  # fmt: skip
    # the model and the area file are inputs too
    (out / "m.tif").symlink_to(models["water"])
    with pytest.raises(ConfigError, match="a file this run reads"):
        predict(scene, models["water"], {"vector": out / "w.gpkg", "class": out / "m.tif"},
                overwrite=True)  # fmt: skip
    area = predict(scene, models["water"], out / "area.gpkg").files["vector"]
    with pytest.raises(ConfigError, match="a file this run reads"):
        predict(scene, models["water"], area, aoi=area, overwrite=True)
    assert scene.read_bytes() == before
    assert listing(out) == ["area.gpkg", "link.tif", "m.tif", "s.tif", "sub"]
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", "--raster", scene,
                       "--overwrite", "--model", models["water"])  # fmt: skip
    assert code == 2 and "a file this run reads" in err
    assert scene.read_bytes() == before


# ---------------------------------------------------------------- 2 and 14. one plan
def test_quicklook_and_vector_are_checked_as_one_plan(scene: Path, out: Path, models) -> None:
    gpkg = out / "w.gpkg"
    gpkg.write_bytes(PRECIOUS)
    (out / "q.png").symlink_to(gpkg)  # the quicklook's name is the vector output's file
    with pytest.raises(ConfigError, match="are one file"):
        predict(scene, models["water"], gpkg, quicklook=out / "q.png", overwrite=True)
    assert gpkg.read_bytes() == PRECIOUS
    code, _, err = cli("predict", "water", scene, "-o", gpkg, "--quicklook", gpkg, "--overwrite",
                       "--model", models["water"])  # fmt: skip
    assert code == 2 and gpkg.read_bytes() == PRECIOUS
    # 14: without --overwrite, refused before anything is written (not after the GeoPackage)
    new = out / "new.gpkg"
    code, _, err = cli("predict", "water", scene, "-o", new, "--quicklook", new,
                       "--model", models["water"])  # fmt: skip
    assert code == 2 and "error:" in err
    assert listing(out) == ["q.png", "s.tif", "w.gpkg"]


# ---------------------------------------------------------------- 3. concurrent runs
def test_an_output_that_appears_during_the_run_is_kept(scene: Path, out: Path, models) -> None:
    vector, mask = out / "w.gpkg", out / "w.tif"

    def other_run(percent: float) -> None:  # another run finishes first, mid-sweep
        if percent > 50 and not vector.exists():
            vector.write_bytes(PRECIOUS)

    with pytest.raises(OutputExistsError, match="appeared while this run was working"):
        predict(scene, models["water"], {"vector": vector, "class": mask}, progress=other_run)
    assert vector.read_bytes() == PRECIOUS
    assert listing(out) == ["s.tif", "w.gpkg"]  # the class map was taken back: all or none


# ---------------------------------------------------------------- 4. quicklook of integers
@pytest.mark.parametrize(("dtype", "units"), [("uint16", "amplitude"), ("uint8", "amplitude"),
                                              ("int16", "db")])  # fmt: skip
def test_quicklook_of_integer_rasters(tmp_path: Path, out: Path, models, dtype, units) -> None:
    db = s1_db()
    values = np.round(db) if units == "db" else 10 ** (db / 20) * (50 if dtype == "uint8" else 500)
    src = write_raster(tmp_path / f"s_{dtype}.tif", values.astype(dtype))
    res = predict(src, models["water"], out / "w.gpkg", quicklook=out / "q.png", units=units)
    assert res.files["quicklook"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("predict", "water", src, "-o", out / "c.gpkg", "--quicklook",
                       out / "c.png", "--units", units, "--model", models["water"])  # fmt: skip
    assert code == 0, err
    assert listing(out) == ["c.gpkg", "c.png", "q.png", "w.gpkg"]


# ---------------------------------------------------------------- 5 and 12. absurd sizes
def _vrt(path: Path, source: Path, width: int, height: int, geotransform: str) -> Path:
    path.write_text(f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
  <SRS>EPSG:32631</SRS>
  <GeoTransform>{geotransform}</GeoTransform>
  <VRTRasterBand dataType="Float32" band="1">
    <Description>VV_db</Description>
    <SimpleSource>
      <SourceFilename relativeToVRT="0">{source}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="268" ySize="217"/>
      <DstRect xOff="0" yOff="0" xSize="268" ySize="217"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>""")
    return path


def test_absurd_size_is_refused_with_numbers_and_a_way_out(
    tmp_path: Path, out: Path, s1_db: Path, models
) -> None:
    gt = "620000, 20, 0, 4830000, 0, -20"
    huge = _vrt(tmp_path / "huge_db.vrt", s1_db, 2_000_000, 2_000_000, gt)
    t = time.perf_counter()
    with pytest.raises(InputError, match=r"2,000,000 x 2,000,000 px .* area of interest .*force"):
        predict(huge, models["water"], out / "w.gpkg")
    assert time.perf_counter() - t < 10  # refused up front, not after minutes of sweeping
    code, _, err = cli("predict", "water", huge, "-o", out / "w.gpkg", "--model", models["water"])
    assert code == 2 and "Gpx" in err and "--aoi" in err and "--force" in err
    # the way out works: an area of interest inside the real data
    res = predict(huge, models["water"], out / "w.gpkg", aoi=(620000, 4826000, 624000, 4830000))
    assert res.files["vector"].exists()
    # 12: a raster reaching beyond its CRS is named in its own CRS, not a derived one
    far = _vrt(tmp_path / "far_db.vrt", s1_db, 268, 217, "620000, 200000, 0, 4830000, 0, -200000")
    with pytest.raises(InputError, match="EPSG:32631") as err_info:
        predict(far, models["water"], out / "far.gpkg", resolution_tolerance=1e9)
    assert "laea" not in str(err_info.value) and "inf" not in str(err_info.value)
    assert listing(out) == ["w.gpkg"]


# ---------------------------------------------------------------- 6. unreadable rasters
def test_unreadable_rasters_name_the_file_and_block(
    tmp_path: Path, out: Path, s1_db: Path, models
) -> None:
    truncated = tmp_path / "truncated_db.tif"
    truncated.write_bytes(s1_db.read_bytes()[:10_000])
    missing = _vrt(tmp_path / "missing_db.vrt", tmp_path / "gone.tif", 268, 217,
                   "620000, 20, 0, 4830000, 0, -20")  # fmt: skip
    for bad in (truncated, missing):
        with pytest.raises(RasterError, match=f"{bad.name}"):
            predict(bad, models["water"], out / "w.gpkg")
        code, _, err = cli("predict", "water", bad, "-o", out / "w.gpkg", "--model",
                           models["water"])  # fmt: skip
        assert code == 2 and bad.name in err and len(err.strip().splitlines()) == 1
    assert listing(out) == []


# ---------------------------------------------------------------- 7. disk full
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 200 KB file system (tmpfs), where the outputs of the scene cannot fit."""
    folder = tmp_path / "small"
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        # lazy: a GDAL handle the failed run left to the garbage collector may still be open
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_is_one_clear_line(small_disk: Path, s1_db: Path, models) -> None:
    big = {"probability": small_disk / "p.tif", "class": small_disk / "c.tif",
           "vector": small_disk / "w.gpkg"}  # fmt: skip
    with pytest.raises(RasterError, match=r"not enough space on .* MB"):
        predict(s1_db, models["water9"], big)  # estimated before the work
    noise = write_raster(
        small_disk.parent / "noise_db.tif",
        np.random.default_rng(0).normal(-12, 6, (600, 600)).astype("float32"),
    )
    with pytest.raises(RasterError, match=r"no space left on .*needed about \d+ MB") as exc:
        predict(noise, models["water9"], big, force=True)
    assert "CREATE TABLE" not in str(exc.value)
    assert listing(small_disk) == []  # temporary files removed


# ---------------------------------------------------------------- 8. unwritable quicklook
def test_unwritable_quicklook_folder_writes_nothing(scene: Path, out: Path, models) -> None:
    with pytest.raises(RasterError, match="is not writable"):
        predict(scene, models["water"], out / "w.gpkg", quicklook="/proc/q.png")
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", "--quicklook",
                       "/proc/q.png", "--model", models["water"])  # fmt: skip
    assert code == 2 and "not writable" in err
    assert listing(out) == ["s.tif"]  # no GeoPackage committed before the quicklook failed


# ---------------------------------------------------------------- 9. --aoi nan
def test_aoi_of_nan_is_refused(scene: Path, out: Path, models) -> None:
    with pytest.raises(InputError, match="finite"):
        predict(scene, models["water"], out / "w.gpkg", aoi=(math.nan,) * 4)
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", "--aoi",
                       "nan,nan,nan,nan", "--model", models["water"])  # fmt: skip
    assert code == 2 and "finite" in err
    assert listing(out) == ["s.tif"]


# ---------------------------------------------------------------- 10. model metadata
def test_model_metadata_is_validated(tmp_path: Path, scene: Path, out: Path, models) -> None:
    model = onnx.load(str(models["water"]))
    for prop in model.metadata_props:
        if prop.key == "sarmae_info":
            info = json.loads(prop.value)
            info["patch_size"] = 0
            prop.value = json.dumps(info)
    bad = tmp_path / "patch0.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(CheckpointError, match="invalid sarmae metadata: patch_size must be"):
        predict(scene, bad, out / "w.gpkg")
    code, _, err = cli("info", bad)
    assert code == 2 and "patch_size" in err
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", "--model", bad)
    assert code == 2 and "patch_size" in err
    assert listing(out) == ["s.tif"]


# ---------------------------------------------------------------- 11. SIGTERM, stale files
def _big_scene(folder: Path) -> Path:
    """The real scene tiled 6 x 6 (1302 x 1608 px): a run long enough to be interrupted."""
    return write_raster(folder / "big_db.tif", np.tile(s1_db(), (6, 6)))


def _interrupt(tmp_path: Path, out: Path, model: Path, sig: int) -> subprocess.CompletedProcess:
    scene = _big_scene(tmp_path)
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "water", str(scene), "-o",
           str(out / "w.gpkg"), "--raster", str(out / "w.tif"), "--model", str(model),
           "--batch-size", "1"]  # fmt: skip
    # A shell's background job starts with SIGINT ignored, and Python keeps it so: give the
    # child the default disposition, as a terminal would, whatever launched the tests.
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(".part" in p.name for p in out.iterdir()) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path, out: Path, models) -> None:
    r = _interrupt(tmp_path, out, models["water"], signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    assert "terminated" in r.stderr and "Traceback" not in r.stderr
    assert listing(out) == []


def test_leftovers_of_dead_runs_are_swept(scene: Path, out: Path, models) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    stale = [out / f".w.sarmae-{pid}-0123abcd.part.gpkg",
             out / f".foreground.sarmae-{pid}-89abcdef.scratch.tif"]  # fmt: skip
    alive = out / ".w.sarmae-1-0123abcd.part.gpkg"  # pid 1 lives: a run still working
    for p in [*stale, alive]:
        p.write_bytes(b"half a file")
    predict(scene, models["water"], out / "w.gpkg")
    assert listing(out) == sorted([alive.name, "s.tif", "w.gpkg"])
    assert sweep_stale(out) == []


# ---------------------------------------------------------------- 13. threshold
@pytest.mark.parametrize("threshold", [2.0, math.nan, -1.0, 0.0, 1.0])
def test_threshold_outside_0_1_is_refused(scene: Path, out: Path, models, threshold) -> None:
    with pytest.raises(ConfigError, match="threshold must lie strictly between 0 and 1"):
        predict(scene, models["water"], out / "w.gpkg", threshold=threshold)
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", "--threshold",
                       str(threshold), "--model", models["water"])  # fmt: skip
    assert code == 2 and "threshold" in err
    assert listing(out) == ["s.tif"]


# ---------------------------------------------------------------- 15. scaled dB
def test_db_times_100_is_refused_with_the_scaling(tmp_path: Path, out: Path, models) -> None:
    scaled = write_raster(tmp_path / "s_db.tif", np.round(s1_db() * 100).astype("int16"))
    assert read(scaled)[0].min() < -2000
    with pytest.raises(InputError, match=r"cannot be dB backscatter.*dB x 100"):
        predict(scaled, models["water"], out / "w.gpkg")
    code, _, err = cli("predict", "water", scaled, "-o", out / "w.gpkg", "--model",
                       models["water"])  # fmt: skip
    assert code == 2 and "divide by 100" in err
    assert listing(out) == []


# ---------------------------------------------------------------- 17. API types
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": "256"}, "tile must be an int"),
        ({"tile": 64.0}, "tile must be an int"),
        ({"bands": "VV"}, "bands must be a list"),
        ({"bands": [1.5]}, "each band is a name"),
        ({"min_area_m2": "big"}, "min_area_m2 must be a number"),
        ({"batch_size": True}, "batch_size must be an int"),
        ({"overwrite": "yes"}, "overwrite must be True or False"),
        ({"products": "class"}, "products must be a list"),
    ],
)
def test_api_types_are_checked_at_the_boundary(scene, out, models, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        predict(scene, models["water"], out / "w.tif", **kwargs)
    assert listing(out) == ["s.tif"]


# ---------------------------------------------------------------- 18. Ctrl-C and -q
def test_ctrl_c_exits_130_without_aborted(tmp_path: Path, out: Path, models) -> None:
    r = _interrupt(tmp_path, out, models["water"], signal.SIGINT)
    assert r.returncode == 130, r.stderr
    assert "Aborted!" not in r.stderr and "cancelled" in r.stderr
    assert listing(out) == []


def test_quiet_prints_each_note_once(tmp_path: Path, out: Path, models) -> None:
    x = s1_db()
    no_crs = tmp_path / "plain.tif"
    write_raster(no_crs, x, crs=None)  # notes: no CRS, units guessed
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "water", str(no_crs), "-q", "-o",
           str(out / "w.gpkg"), "--model", str(models["water"])]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "InferenceWarning" not in r.stderr
    both = r.stdout + r.stderr
    assert both.count("has no CRS") == 1


# ---------------------------------------------------------------- polygon options
@pytest.mark.parametrize(
    ("option", "value"),
    [("min_area_m2", -5.0), ("simplify_m", -10.0), ("simplify_m", math.nan),
     ("min_area_m2", math.inf), ("fill_holes_m2", math.nan), ("fill_holes_m2", -1.0)],
)  # fmt: skip
def test_negative_or_non_finite_polygon_options(scene, out, models, option, value) -> None:
    with pytest.raises(ConfigError, match=option):
        predict(scene, models["water"], out / "w.gpkg", **{option: value})
    flag = {"min_area_m2": "--min-area", "simplify_m": "--simplify",
            "fill_holes_m2": "--fill-holes"}[option]  # fmt: skip
    code, _, err = cli("predict", "water", scene, "-o", out / "w.gpkg", flag, str(value),
                       "--model", models["water"])  # fmt: skip
    assert code == 2 and option in err
    assert listing(out) == ["s.tif"]


def test_cancel_flag_is_seen_while_the_model_runs(scene: Path, out: Path, models) -> None:
    """Cancelling is seen between batches: one batch of a few tiles, well under a second."""
    cancel = threading.Event()
    t0 = [0.0]

    def progress(percent: float) -> None:
        if percent > 5 and not cancel.is_set():
            cancel.set()
            t0[0] = time.perf_counter()

    with pytest.raises(Exception, match="cancelled"):
        predict(scene, models["water"], out / "w.gpkg", progress=progress, cancel=cancel,
                batch_size=1)  # fmt: skip
    assert time.perf_counter() - t0[0] < 1.0
    assert listing(out) == ["s.tif"]


# ---------------------------------------------------------------- 16. export of a non-checkpoint
def test_export_says_what_a_wrong_file_is(tmp_path: Path, models) -> None:
    import torch

    pth = tmp_path / "authors.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, pth)
    for path, what in ((models["water"], "is an ONNX model, already exported"),
                       (pth, "is a PyTorch (torch.save) checkpoint")):  # fmt: skip
        code, _, err = cli("export", path, "-o", tmp_path / "out.onnx")
        assert code == 2 and what in err and "corrupt" not in err
        assert ".safetensors checkpoint written by `sarmae-train finetune`" in err
    assert not (tmp_path / "out.onnx").exists()


# ---------------------------------------------------------------- 5. cancel at any stage
def _sparse_vrt(folder: Path, scene: Path, size: int, at: tuple[int, int]) -> Path:
    """A ``size`` x ``size`` VRT on the real scene's grid, nodata except one copy of the scene
    at ``at`` (row, col): away from the few windows that predict samples first, so predict
    must scan the raster to find a valid pixel."""
    import rasterio

    with rasterio.open(scene) as src:
        w, h, t, wkt = src.width, src.height, src.transform, src.crs.to_wkt()
    r, c = at
    xml = (
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>"
        '<VRTRasterBand dataType="Float32" band="1"><NoDataValue>-99</NoDataValue>'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{scene}</SourceFilename>'
        f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/></SimpleSource>'
        "</VRTRasterBand></VRTDataset>"
    )
    path = folder / "s1_VV_db_sparse.vrt"  # VV and dB in the name, as the scene's
    path.write_text(xml)
    return path


def test_cancel_is_seen_within_a_second_while_scanning_the_raster(
    out: Path, s1_db: Path, models
) -> None:
    """A huge raster whose sampled windows are all nodata is scanned strip by strip before any
    model runs (seconds); a cancel from another thread during the scan ends it at once."""
    size = 40_000
    vrt = _sparse_vrt(out, s1_db, size, (int(size * 0.85), int(size * 0.1)))
    cancel = threading.Event()

    # the scan needs several seconds to reach the scene; latency is counted from when the
    # cancel was due, since a C call that holds the GIL would also delay the timer thread
    due = time.perf_counter() + 1.0
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    try:
        with pytest.raises(Exception, match="cancelled"):
            predict(vrt, models["water"], out / "w.gpkg", cancel=cancel, force=True)
    finally:
        timer.cancel()
    assert cancel.is_set() and time.perf_counter() - due < 1.0
    assert listing(out) == [vrt.name]


def _tiled_vrt(folder: Path, scene: Path, size: int) -> Path:
    """A ``size`` x ``size`` VRT repeating the real scene (as benchmarks/inference.py)."""
    import rasterio

    with rasterio.open(scene) as src:
        w, h, t, wkt = src.width, src.height, src.transform, src.crs.to_wkt()
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="0">{scene}</SourceFilename>'
        f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{min(w, size - c)}" '
        f'ySize="{min(h, size - r)}"/><DstRect xOff="{c}" yOff="{r}" '
        f'xSize="{min(w, size - c)}" ySize="{min(h, size - r)}"/></SimpleSource>'
        for r in range(0, size, h)
        for c in range(0, size, w)
    )
    path = folder / "s1_VV_db_tiled.vrt"
    path.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>"
        '<VRTRasterBand dataType="Float32" band="1"><NoDataValue>-99</NoDataValue>'
        f"{sources}</VRTRasterBand></VRTDataset>"
    )
    return path


def _cancel_during(
    run: Callable[[Callable[[float], None], threading.Event], object],
    at_percent: float,
    delay: float,
) -> None:
    """``run(progress, cancel)`` cancelled from another thread ``delay`` s after its progress
    reaches ``at_percent``: it must end cancelled within a second of when the cancel was due
    (measured from then, as a C call holding the GIL also delays the timer thread)."""
    cancel = threading.Event()
    timers: list[threading.Timer] = []
    due: list[float] = []

    def progress(percent: float) -> None:
        if percent >= at_percent and not timers:
            due.append(time.perf_counter() + delay)
            timers.append(threading.Timer(delay, cancel.set))
            timers[0].start()

    try:
        with pytest.raises(Exception, match="cancelled"):
            run(progress, cancel)
    finally:
        for timer in timers:
            timer.cancel()
    assert cancel.is_set() and time.perf_counter() - due[0] < 1.0


def test_cancel_is_seen_within_a_second_while_overviews_and_cogs_are_written(
    out: Path, s1_db: Path, models
) -> None:
    """After the sweep, overviews and COG copies of a 3k x 3k output take seconds (GDAL calls
    of their own); a cancel from another thread then stops them at once, nothing left."""
    vrt = _tiled_vrt(out, s1_db, 3072)
    outputs = {"class": out / "c.tif", "probability": out / "p.tif"}
    # 90 % is the sweep's last batch; a second later the run is making overviews
    _cancel_during(
        lambda progress, cancel: predict(
            vrt, models["water"], outputs, cog=True, batch_size=16, progress=progress,
            cancel=cancel,
        ),
        at_percent=90,
        delay=1.0,
    )  # fmt: skip
    assert listing(out) == [vrt.name]


def test_cancel_is_seen_within_a_second_while_polygons_are_traced(
    out: Path, s1_db: Path, models
) -> None:
    """The polygons of a 3k x 3k water map are traced strip by strip in a worker thread while
    the sweep goes on; a cancel from another thread midway stops both at once (the strip being
    traced is one GDAL call of well under a second), and nothing is left."""
    vrt = _tiled_vrt(out, s1_db, 3072)
    _cancel_during(
        lambda progress, cancel: predict(
            vrt, models["water"], out / "w.gpkg", batch_size=16, progress=progress,
            cancel=cancel,
        ),
        at_percent=60,
        delay=0.2,
    )  # fmt: skip
    assert listing(out) == [vrt.name]


def test_a_cancel_stops_the_polygon_worker_within_a_second(tmp_path: Path) -> None:
    """The polygon product alone, fed a map of speckle at scene width faster than it traces
    it (the sweep's thread then waits on the bounded queue): a cancel raises in the sweep's
    thread within a second, from its next call or from finish, and close() returns at once."""
    from sarmae_core.errors import CancelledError
    from sarmae_core.inference.io import raster_io
    from sarmae_core.inference.products.vectorize import PolygonOptions, PolygonProduct

    fileio = raster_io.get()
    x = s1_db()
    speckle = ((x < -14) & (x > -99)).astype(np.uint8)
    rows = np.tile(speckle, (1 + 256 // speckle.shape[0], 16))[:256]  # a chunk as the sweep's
    width = rows.shape[1]
    cancel = threading.Event()

    def check() -> None:
        if cancel.is_set():
            raise CancelledError("cancelled by the user; nothing was written")

    fields = [("class", "int"), ("class_name", "str"), ("area_m2", "real")]
    writer = fileio.feature_writer(tmp_path / "p.gpkg", "water", None, fields)
    height = 40 * 256
    product = PolygonProduct(fileio, writer, ["land", "water"], Transform(1, 0, 0, 0, -1, 0),
                             width, height, None, None, PolygonOptions(), check)  # fmt: skip
    cancelled_at: list[float] = []

    def set_cancel() -> None:
        cancelled_at.append(time.perf_counter())
        cancel.set()

    timer = threading.Timer(1.0, set_cancel)
    timer.start()
    try:
        with pytest.raises(CancelledError):
            for row in range(0, height, 256):
                product(row, rows[:256])
            product.finish()
        assert cancelled_at and time.perf_counter() - cancelled_at[0] < 1.0
    finally:
        timer.cancel()
        t = time.perf_counter()
        product.close()
        assert time.perf_counter() - t < 1.0

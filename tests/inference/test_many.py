"""``predict_many`` and ``sarmae predict ... SCENES -o OUTDIR``: many real scenes on a real Dask
cluster (two worker processes, shared by the module: starting one costs seconds).

The scenes are tiles of the committed Sentinel-1 scene on three grids and CRSs, and one
truncated GeoTIFF; the model is the real ONNX test segmenter (:mod:`.helpers`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from sarmae_core.cli import main
from sarmae_core.errors import ConfigError
from sarmae_core.inference.batch.scenes import is_many, resolve_scenes
from sarmae_core.inference.many import predict_many
from sarmae_core.inference.predict import predict

from .helpers import features, s1_db, write_raster

GOOD = ("utm31", "utm32", "wgs84")


def _reproject(src: Path, dst: Path, crs: str) -> Path:
    with rasterio.open(src) as ds:
        transform, w, h = calculate_default_transform(ds.crs, crs, ds.width, ds.height,
                                                      *ds.bounds)  # fmt: skip
        profile = ds.profile | dict(crs=crs, transform=transform, width=w, height=h, nodata=-99)
        profile.pop("blockysize", None)
        with rasterio.open(dst, "w", **profile) as out:
            reproject(rasterio.band(ds, 1), rasterio.band(out, 1), dst_nodata=-99,
                      resampling=Resampling.nearest)  # fmt: skip
    return dst


def _make_scenes(folder: Path) -> Path:
    """Three tiles of the real scene on different grids and CRSs, and a truncated GeoTIFF."""
    folder.mkdir(parents=True)
    tmp = folder.parent / f"{folder.name}_src"
    tmp.mkdir()
    db = s1_db()
    write_raster(folder / "utm31.tif", db[:160, :150])
    _reproject(write_raster(tmp / "b.tif", db[90:, 40:]), folder / "utm32.tif", "EPSG:32632")
    _reproject(write_raster(tmp / "c.tif", db[40:200, 60:]), folder / "wgs84.tif", "EPSG:4326")
    whole = (folder / "utm31.tif").read_bytes()
    (folder / "broken.tif").write_bytes(whole[: len(whole) // 3])  # a download cut short
    return folder


@pytest.fixture(scope="module")
def scheduler():
    """One LocalCluster of two worker processes for the module."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return _make_scenes(tmp_path_factory.mktemp("many") / "scenes")


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*_water.gpkg")}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".sarmae-" in p.name or p.name.endswith(".tmp")]


def test_many_scenes_equal_sequential_runs_and_a_bad_scene_does_not_stop_them(
    scenes, models, scheduler, io_backend, tmp_path
):
    out = tmp_path / "out"
    result = predict_many(scenes, out, str(models["water"]), job="water", scheduler=scheduler,
                          io_backend=io_backend)  # fmt: skip
    status = {r["scene"]: r["status"] for r in result.scenes}
    assert status == {"broken": "failed", "utm31": "done", "utm32": "done", "wgs84": "done"}
    error = result.of("failed")[0]["error"]
    assert "broken.tif" in error and "\n" not in error and "Traceback" not in error
    assert not (out / "broken_water.gpkg").exists() and not _leftovers(out)

    records = {r["scene"]: r for r in result.scenes}
    for name in GOOD:  # the same maps as one predict per scene, in this process
        seq = predict(scenes / f"{name}.tif", str(models["water"]), tmp_path / f"{name}.gpkg",
                      job="water", io_backend=io_backend)  # fmt: skip
        many = sorted(f["area_m2"] for f in features(out / f"{name}_water.gpkg"))
        assert many == pytest.approx(sorted(f["area_m2"] for f in features(seq.files["vector"])))
        assert len(many) > 0
        assert records[name]["water_km2"] == pytest.approx(seq.summary.water_area_km2)

    rows = {f["scene"]: f for f in features(out / "catalogue.gpkg")}  # read back by OGR
    assert {k: v["status"] for k, v in rows.items()} == status
    # its header survived the cut: the catalogue still shows where it lies (utm31's copy)
    assert rows["broken"]["envelope"] == pytest.approx(rows["utm31"]["envelope"])
    assert "broken.tif" in rows["broken"]["error"]
    for name in GOOD:
        with rasterio.open(scenes / f"{name}.tif") as ds:
            west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        x0, x1, y0, y1 = rows[name]["envelope"]
        assert (x0, y0, x1, y1) == pytest.approx((west, south, east, north), abs=1e-4)
        assert rows[name]["water_km2"] == pytest.approx(records[name]["water_km2"])
        assert rows[name]["output"] == str(out.absolute() / f"{name}_water.gpkg")
    with open(out / "catalogue.csv", newline="") as f:
        table = {r["scene"]: r for r in csv.DictReader(f)}
    assert {k: v["status"] for k, v in table.items()} == status
    for name in GOOD:
        assert float(table[name]["water_km2"]) == pytest.approx(records[name]["water_km2"], 1e-5)


def test_rerun_skips_finished_scenes_and_redoes_only_what_changed(
    scenes, models, scheduler, io_backend, tmp_path
):
    folder = tmp_path / "scenes"
    shutil.copytree(scenes, folder)
    out = tmp_path / "out"

    def run(**kw):
        r = predict_many(folder, out, str(models["water"]), job="water", scheduler=scheduler,
                         io_backend=io_backend, **kw)  # fmt: skip
        return {s["scene"]: s["status"] for s in r.scenes}

    run()
    before = _mtimes(out)
    assert run() == {"broken": "failed", "utm31": "skipped", "utm32": "skipped",
                     "wgs84": "skipped"}  # fmt: skip
    assert _mtimes(out) == before  # skipped means untouched

    # a scene re-delivered with other pixels is redone; a mere touch is not
    write_raster(folder / "utm31.tif", s1_db()[:160, :150][::-1].copy())
    os.utime(folder / "utm32.tif")
    assert run()["utm31"] == "done"
    after = _mtimes(out)
    assert after["utm31_water.gpkg"] != before["utm31_water.gpkg"]
    assert {k: after[k] for k in after if "utm31" not in k} == {
        k: before[k] for k in before if "utm31" not in k
    }

    # new options redo every scene, replacing the run's own outputs without overwrite
    statuses = run(threshold=0.3)
    assert [statuses[n] for n in GOOD] == ["done"] * 3


def test_a_file_of_someone_else_is_kept_and_only_its_scene_fails(
    scenes, models, scheduler, io_backend, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "utm32_water.gpkg").write_bytes(b"someone's work")
    paths = [scenes / f"{n}.tif" for n in GOOD] + [tmp_path / "missing.tif"]
    r = predict_many(paths, out, str(models["water"]), job="water", scheduler=scheduler,
                     io_backend=io_backend)  # fmt: skip
    status = {s["scene"]: s for s in r.scenes}
    assert status["utm32"]["status"] == "failed" and "exists" in status["utm32"]["error"]
    assert (out / "utm32_water.gpkg").read_bytes() == b"someone's work"
    assert status["utm31"]["status"] == status["wgs84"]["status"] == "done"
    assert "does not exist" in status["missing"]["error"]
    rows = {f["scene"]: f for f in features(out / "catalogue.gpkg")}
    assert rows["missing"]["geometry"] is None  # nowhere to draw it: a null geometry
    assert rows["missing"]["status"] == "failed" and rows["utm31"]["geometry"] is not None


def test_a_killed_run_resumes_without_redoing_finished_scenes(
    models, scheduler, io_backend, tmp_path
):
    if io_backend == "rasterio":
        pytest.skip("a kill is about processes, not the IO library: once is enough")
    folder = tmp_path / "scenes"
    folder.mkdir()
    big = np.tile(s1_db(), (2, 2))  # ~1 s a scene on one worker: time to kill it mid-run
    for i in range(6):
        write_raster(folder / f"s{i}.tif", np.roll(big, 17 * i, axis=1))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sarmae_core.cli", "predict", "water", str(folder), "-o",
           str(out), "--model", str(models["water"]), "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in (out / "manifests").glob("*.json")
                if json.loads(p.read_text()).get("status") == "done"]  # fmt: skip
        if done:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    finished = {p.name.removesuffix("_water.gpkg") for p in out.glob("*_water.gpkg")}
    for name in finished:  # every output of the killed run is complete and recorded
        manifest = json.loads((out / "manifests" / f"{name}_water.json").read_text())
        assert manifest["status"] == "done"
    assert 1 <= len(finished) < 6, "the run was not killed mid-way: make the scenes larger"

    r = predict_many(folder, out, str(models["water"]), job="water", scheduler=scheduler)
    status = {s["scene"]: s["status"] for s in r.scenes}
    assert {n for n, s in status.items() if s == "skipped"} == finished
    assert {n for n, s in status.items() if s == "done"} == {f"s{i}" for i in range(6)} - finished
    assert not _leftovers(out)


def test_stac_item_collection_through_the_command_line(
    scenes, models, scheduler, tmp_path, monkeypatch
):
    items = []
    for k, name in enumerate(("utm31", "wgs84")):
        db = s1_db()[k * 50 : k * 50 + 160, :160].copy()
        for i in range(k + 1):  # ships: bright targets of 16 x 16 px at sea
            db[20 + 60 * i : 36 + 60 * i, 40:56] = 20.0
        scene = write_raster(tmp_path / f"{name}.tif", db)
        assets = {"vv": {"href": scene.as_uri(),
                         "type": "image/tiff; application=geotiff; profile=cloud-optimized"},
                  "vh": {"href": str(scene), "type": "image/tiff"},
                  "thumbnail": {"href": "thumb.png", "type": "image/png"}}  # fmt: skip
        items.append({"type": "Feature", "stac_version": "1.0.0", "id": f"S1A_{name}",
                      "geometry": None, "properties": {}, "assets": assets})  # fmt: skip
    stac = tmp_path / "items.json"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    out = tmp_path / "ships"
    base = ["predict", "ships", str(stac), "-o", str(out), "--model", str(models["ships"]),
            "--scheduler", scheduler]  # fmt: skip
    runner = CliRunner()

    r = runner.invoke(main, base)  # two raster assets: which band is not guessed
    assert r.exit_code == 2 and "--asset" in r.output and "Traceback" not in r.output
    assert not out.exists()  # refused before anything was written

    r = runner.invoke(main, [*base, "--asset", "VV"])
    assert r.exit_code == 0, r.output
    assert "2 scenes: 2 done" in r.output
    rows = {f["scene"]: f for f in features(out / "catalogue.gpkg")}
    assert set(rows) == {"S1A_utm31", "S1A_wgs84"}
    for name, row in rows.items():
        assert row["ship_count"] == len(features(out / f"{name}_ships.gpkg"))
    assert rows["S1A_utm31"]["ship_count"] >= 1 and rows["S1A_wgs84"]["ship_count"] >= 2

    items[0]["assets"]["vv"]["href"] = "https://example.com/s1.tif"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    r = runner.invoke(main, [*base, "--asset", "vv"])
    assert r.exit_code == 2 and "only local files" in r.output


def test_scene_lists_name_the_same_scenes(scenes, tmp_path):
    listed = tmp_path / "scenes.txt"
    listed.write_text("# event 2026-12-01\nutm31.tif\n\n" + str(scenes / "wgs84.tif") + "\n")
    shutil.copy(scenes / "utm31.tif", tmp_path / "utm31.tif")
    assert [s.id for s in resolve_scenes(listed)] == ["utm31", "wgs84"]
    assert resolve_scenes(listed)[0].path == tmp_path / "utm31.tif"
    assert [s.id for s in resolve_scenes(str(scenes / "utm*.tif"))] == ["utm31", "utm32"]
    assert [s.id for s in resolve_scenes(scenes)] == ["broken", "utm31", "utm32", "wgs84"]
    with pytest.raises(ConfigError, match="same outputs"):
        resolve_scenes([scenes / "utm31.tif", tmp_path / "utm31.tif"])
    with pytest.raises(ConfigError, match="no scenes found"):
        resolve_scenes(str(tmp_path / "*.nothing"))
    # the single-scene command keeps every raster path it took before
    assert not is_many(scenes / "utm31.tif")
    assert is_many(scenes) and is_many(listed) and is_many(str(scenes / "*.tif"))


def test_nothing_written_for_a_run_refused_up_front(scenes, models, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="no option"):
        predict_many(scenes, out, str(models["water"]), job="water", treshold=0.3)
    with pytest.raises(ConfigError, match="products"):
        predict_many(scenes, out, str(models["ships"]), job="ships", products=["class"])
    r = CliRunner().invoke(main, ["predict", "water", str(scenes), "-o", str(out / "w.gpkg")])
    assert r.exit_code == 2 and "-o OUTDIR" in r.output
    assert not out.exists()


def test_flood_over_many_scenes_pairs_each_with_the_before_scene_that_covers_it(
    models, scheduler, io_backend, tmp_path
):
    """`sarmae predict flood AFTER_SCENES --before BEFORE_SCENES -o OUT` (issue 17): each after
    scene is compared with the earlier scene that overlaps it most; one that no earlier scene
    covers is reported, the others mapped as one predict per pair would; a rerun skips them."""
    from rasterio.transform import Affine

    from .helpers import make_change_onnx, seg_info, to_epsg4326

    info = seg_info(class_names=["background", "flood"], polarisations=["VV", "VV"],
                    dates=["before", "after"], resolution_m=20.0,
                    normalization={"mean": [-12.0, -12.0], "std": [5.0, 5.0]})  # fmt: skip
    model = make_change_onnx(tmp_path / "flood.onnx", info)
    after, before = tmp_path / "after", tmp_path / "before"
    after.mkdir()
    before.mkdir()
    db = s1_db()
    flooded = db.copy()
    flooded[60:120, 80:180] = -25.0  # a field as dark as open water after the event
    write_raster(after / "north.tif", flooded[:150])
    with rasterio.open(after / "north.tif") as ds:
        origin = ds.transform
    write_raster(after / "south.tif", db[100:], transform=origin * Affine.translation(0, 100))
    far = origin * Affine.translation(25_000, 0)  # the same raster 500 km east: no before
    write_raster(after / "elsewhere.tif", db, transform=far)
    to_epsg4326(write_raster(tmp_path / "whole.tif", db), before / "archive_4326.tif")
    write_raster(before / "other_place.tif", db, transform=far * Affine.translation(0, 25_000))

    result = predict_many(after, tmp_path / "out", str(model), job="flood", before=before,
                          scheduler=scheduler, io_backend=io_backend)  # fmt: skip
    records = {r["scene"]: r for r in result.scenes}
    assert {k: r["status"] for k, r in records.items()} == {
        "elsewhere": "failed", "north": "done", "south": "done"}  # fmt: skip
    assert "no scene before the event overlaps elsewhere.tif" in records["elsewhere"]["error"]
    assert records["north"]["before"] == str(before / "archive_4326.tif")
    seq = predict(after / "north.tif", str(model), tmp_path / "north.gpkg", job="flood",
                  before=before / "archive_4326.tif", io_backend=io_backend)  # fmt: skip
    assert records["north"]["flood_km2"] == pytest.approx(seq.summary.flood_area_km2)
    # the field (60 x 100 px of 20 m: 2.4 km2) is flood; the south tile, unchanged, has little
    # the darkened field is flood where it was land (1.4 of its 2.4 km2); the south tile,
    # unchanged, has next to none
    assert records["north"]["flood_km2"] > 1.0 > 0.1 > records["south"]["flood_km2"]
    rows = {f["scene"]: f for f in features(tmp_path / "out" / "catalogue.gpkg")}
    assert (
        rows["north"]["before"].endswith("archive_4326.tif") and rows["elsewhere"]["before"] is None
    )

    again = predict_many(after, tmp_path / "out", str(model), job="flood", before=before,
                         scheduler=scheduler, io_backend=io_backend)  # fmt: skip
    assert {r["scene"]: r["status"] for r in again.scenes} == {
        "elsewhere": "failed", "north": "skipped", "south": "skipped"}  # fmt: skip
    # another before scene that covers them as well (later in name order): new pairs, redone
    shutil.copy(before / "archive_4326.tif", before / "archive_b.tif")
    third = predict_many(after, tmp_path / "out", str(model), job="flood", before=before,
                         scheduler=scheduler, io_backend=io_backend)  # fmt: skip
    assert {r["scene"]: r["status"] for r in third.scenes} == {
        "elsewhere": "failed", "north": "done", "south": "done"}  # fmt: skip
    assert {r["before"] for r in third.scenes if "before" in r} == {str(before / "archive_b.tif")}
    (before / "archive_b.tif").unlink()
    with pytest.raises(ConfigError, match="needs the scenes before the event"):
        predict_many(after, tmp_path / "o2", str(model), job="flood", scheduler=scheduler)

    # the command, as a user types it
    done = CliRunner().invoke(main, [
        "predict", "flood", str(after), "--before", str(before), "-o", str(tmp_path / "cli"),
        "--model", str(model), "--scheduler", scheduler, "-q",
    ])  # fmt: skip
    assert done.exit_code == 2 and "1 of 3 scenes failed" in done.output
    assert (tmp_path / "cli" / "north_flood.gpkg").is_file()


def test_workers_of_our_local_cluster_drop_only_the_heartbeat_teardown_race():
    """A SIGTERM on a busy machine once printed a page of Dask internals: a worker's heartbeat
    raced the cluster's shutdown. Our local cluster's workers filter exactly that record; a
    real worker error still shows."""
    import logging

    from distributed.comm.core import CommClosedError

    from sarmae_core.inference.dask_worker import not_teardown_noise
    from sarmae_core.inference.many import _Cluster

    def record(msg: str, exc: BaseException | None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("distributed.worker", logging.ERROR, "w.py", 1, msg, (), info)

    race = record("Failed to communicate with scheduler during heartbeat.",
                  CommClosedError("ConnectionPool closing."))  # fmt: skip
    assert not not_teardown_noise(race)
    # the same failure while the cluster is up (the scheduler gone for real) still shows
    lost = record("Failed to communicate with scheduler during heartbeat.", OSError("refused"))
    assert not_teardown_noise(lost)
    assert not_teardown_noise(record("Worker exceeded 95% memory budget", None))
    with _Cluster(workers=1, scheduler=None) as client:
        names = client.run(
            lambda: [f.__name__ for f in logging.getLogger("distributed.worker").filters]
        )
        assert [n for ns in names.values() for n in ns] == ["not_teardown_noise"]
    # and the client's own event loop drops distributed's cancel race (the test below)
    from sarmae_core.inference.many import not_sync_cancel_race

    assert not_sync_cancel_race in logging.getLogger("tornado.application").filters


def test_the_client_drops_only_distributeds_cancel_race_on_interrupt():
    """A SIGTERM that reaches the client before its request started made distributed's
    ``sync`` cancel a future it had not assigned yet: a NameError page in the event loop's log
    under "cancelled: ... nothing was written". The client's loop filters exactly that."""
    import logging

    from sarmae_core.inference.many import not_sync_cancel_race

    def unassigned() -> NameError:  # Python's own error for distributed's closure
        future: object

        def cancel() -> None:
            nonlocal future
            print(future)

        try:
            cancel()
        except NameError as exc:
            return exc
        raise AssertionError("no NameError")

    def record(msg: str, exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord("tornado.application", logging.ERROR, "ioloop.py", 1, msg, (),
                                 (type(exc), exc, None))  # fmt: skip

    race = record("Exception in callback %r", unassigned())
    assert "'future'" in str(race.exc_info[1]) and not not_sync_cancel_race(race)
    # any other error of a callback still shows
    assert not_sync_cancel_race(record("Exception in callback %r", NameError("name 'x'")))
    assert not_sync_cancel_race(record("Exception in callback %r", OSError("disk full")))

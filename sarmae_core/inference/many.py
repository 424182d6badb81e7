"""``predict_many``: one job over many scenes on Dask, resumable, with a catalogue.

A scene is the unit of work: each Dask task runs :func:`~sarmae_core.inference.predict.predict`
on one scene, whose memory is bounded by its streaming, and whose outputs are committed all or
none. Around it this module adds what a flood event or an inventory needs: a local cluster (one
worker process per core) or an existing one, a model session kept warm in each worker, a
manifest per scene so that a rerun does only what is missing or changed, failures reported one
line each without stopping the other scenes, and a catalogue of every scene.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError, RasterError, SarmaeError
from .batch.catalogue import footprint, write_catalogue
from .batch.manifest import (
    file_fingerprint,
    manifest_path,
    options_digest,
    outputs_record,
    read_manifest,
    unchanged,
    write_manifest,
)
from .batch.pairs import pair_scenes
from .batch.scenes import Scene, resolve_scenes
from .io import raster_io
from .io.writers import sweep_stale
from .model.backends import BUNDLED_DIR, OnnxBackend, load_backend, resolve_model_path
from .model.bundled import bundled_for_raster
from .notes import InferenceWarning
from .options import NAMES as OPTION_NAMES
from .options import RunOptions
from .predict import JOBS, predict

log = logging.getLogger("sarmae")

#: Options of ``predict`` (:class:`.options.RunOptions`) a many-scene run sets itself, per
#: scene or for the whole run, as arguments of its own.
_OWN = {"job", "overwrite", "io_backend", "quicklook", "products"}
#: Options that do not change what is written: a rerun with another value skips done scenes.
_NOT_IN_KEY = {"batch_size", "force"}
#: The figures of each job in the catalogue: (column, type, PredictionSummary attribute).
#: A new job (flood) adds its line here and its name to ``predict.JOBS``.
FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "water": (("water_km2", "real", "water_area_km2"),),
    "flood": (("flood_km2", "real", "flood_area_km2"),),
    "ships": (("ship_count", "int", "ship_count"),),
}
#: Each worker's model sessions, kept across scenes: an onnxruntime session costs ~0.2 s and
#: a torch checkpoint seconds to load, against a few seconds of work on a small scene.
_SESSIONS: dict[tuple, Any] = {}
_SESSIONS_LOCK = threading.Lock()


@dataclass
class ManyResult:
    """What :func:`predict_many` did.

    Attributes:
        scenes: one record per scene, in input order: ``scene``, ``path``, ``status`` (``done``:
            mapped by this run, ``skipped``: done by an earlier run and unchanged, ``failed``),
            ``water_km2`` or ``ship_count``, ``seconds``, ``error`` (one line), ``output``,
            ``outputs`` and ``footprint`` (EPSG:4326 rings).
        catalogue: paths of ``catalogue.gpkg`` and ``catalogue.csv``.
        dashboard: the Dask dashboard address of the cluster that ran, if any.
        seconds: wall time of the whole call.
    """

    scenes: list[dict[str, Any]]
    catalogue: dict[str, Path]
    dashboard: str | None = None
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def of(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.scenes if r["status"] == status]

    def __str__(self) -> str:
        c = {s: len(self.of(s)) for s in ("done", "skipped", "failed")}
        lines = [
            f"{len(self.scenes)} scenes: {c['done']} done, {c['skipped']} skipped (done "
            f"before, unchanged), {c['failed']} failed in {self.seconds:.1f} s"
        ]
        lines += [f"  failed {r['scene']}: {r['error']}" for r in self.of("failed")]
        lines += [f"  catalogue: {p}" for p in self.catalogue.values()]
        return "\n".join(lines)


def predict_many(
    scenes: Any,
    outdir: str | os.PathLike,
    model: Any = "water",
    *,
    job: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    asset: str | None = None,
    products: Sequence[str] | None = None,
    quicklook: bool = False,
    overwrite: bool = False,
    io_backend: str | None = None,
    progress: Callable[[int, int, dict[str, Any]], Any] | None = None,
    on_cluster: Callable[[str | None], Any] | None = None,
    **options: Any,
) -> ManyResult:
    """Run one job over many scenes, each scene a Dask task; see :mod:`.many`.

    Args:
        scenes: a folder, a glob pattern, a ``.txt`` list of paths, a STAC ItemCollection
            ``.json`` (local or ``file://`` assets), or a list of paths (:func:`.resolve_scenes`).
        outdir: folder of the outputs: ``<scene>_<job>.gpkg`` (and the rasters of ``products``,
            ``<scene>_<job>.png`` with ``quicklook``), ``manifests/``, ``catalogue.gpkg`` and
            ``catalogue.csv``.
        model, job: as for :func:`predict` (``job`` defaults to a bundled model's name).
        workers: worker processes of the local cluster (default: one per core).
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); default
            ``$DASK_SCHEDULER_ADDRESS`` (Dask's own setting), else a local cluster.
        threads: onnxruntime threads per scene (default 1: the cores are filled by scenes).
        asset: STAC asset key of the band to map (``vv``).
        products: as for :func:`predict` (default: the vector layer).
        quicklook: also write a PNG of each scene with its results.
        overwrite: redo every scene and replace its outputs, done or not.
        io_backend: IO backend (``gdal``, ``rasterio``), the same on every worker.
        progress: called in this process with (scenes finished, scenes to run, the scene's
            record): once with ``(0, n, None)`` when the cluster is up, then after each scene.
        on_cluster: called with the Dask dashboard address once the cluster is up.
        **options: any other option of :func:`predict` (:class:`.options.RunOptions`:
            ``tile``, ``threshold``, ``aoi``...), checked before any scene runs. For
            ``job="flood"``, ``before`` names the scenes before the event (a folder, glob,
            list or STAC collection, or one raster): each scene is paired with the one that
            overlaps it most (:mod:`.batch.pairs`); a scene none covers is reported.

    Returns:
        Every scene's record, the catalogue files, the dashboard address.

    Raises:
        ConfigError: no scenes, bad options, an unknown job, an unreachable scheduler.
        CheckpointError: a model that does not exist. A scene that fails does not raise: its
            record says ``failed`` with the error, and the other scenes run.
    """
    start = time.perf_counter()
    unknown = sorted(set(options) - _predict_options())
    if unknown:
        raise ConfigError(f"predict_many has no option {', '.join(unknown)}; see help(predict)")
    RunOptions.of(**options)  # a wrong value is refused here, not once per scene
    before = options.pop("before", None)
    if job is None and isinstance(model, str) and model in JOBS:
        job = model
    if job not in JOBS:
        raise ConfigError(f"name the job of a many-scene run: job={' or '.join(map(repr, JOBS))}")
    wanted = tuple(products or ("vector",))
    allowed = ("vector",) if JOBS[job] == "detection" else ("vector", "class", "probability")
    if not wanted or set(wanted) - set(allowed):
        raise ConfigError(f"products of {job}: any of {', '.join(allowed)}; got {list(wanted)}")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"output folder {outdir} is a file; give a folder for many scenes")
    io_backend = raster_io.get(io_backend).name  # decided here: every worker does alike
    todo_scenes = resolve_scenes(scenes, asset)
    unpaired: dict[str, str] = {}
    if job == "flood":
        if before is None:
            raise ConfigError(
                "flood over many scenes needs the scenes before the event: before=FOLDER, "
                "a glob, a .txt list or a STAC .json (each after scene is paired with the "
                "before scene that overlaps it most)"
            )
        earlier = resolve_scenes([before] if Path(os.fspath(before)).is_file() else before,
                                 asset)  # fmt: skip
        todo_scenes, unpaired = pair_scenes(todo_scenes, earlier, raster_io.get(io_backend))
    elif before is not None:
        raise ConfigError(f"before= is for flood (two dates); {job} maps one scene at a time")
    if isinstance(model, (str, os.PathLike)) and not (isinstance(model, str) and model in JOBS):
        model = resolve_model_path(model).resolve()  # a missing model stops the run up front
    key = _run_key(job, model, products, quicklook, threads, options)
    digest = options_digest(key)
    outdir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    todo: list[Scene] = []
    for scene in todo_scenes:
        if scene.id in unpaired:  # reported, not run on a wrong pair
            records[scene.id] = {
                "scene": scene.id, "path": str(scene.path), "job": job, "status": "failed",
                "error": unpaired[scene.id], "footprint": _footprint(scene, io_backend),
            }  # fmt: skip
            continue
        manifest = read_manifest(manifest_path(outdir, scene.id, job))
        if (not overwrite and manifest is not None
                and unchanged(manifest, scene.path, digest, scene.before)):  # fmt: skip
            records[scene.id] = {**manifest["record"], "status": "skipped"}
        else:
            todo.append(scene)
    dashboard = None
    if todo:
        task = _SceneTask(outdir, job, model, products, quicklook, threads, overwrite, io_backend,
                          digest, options)  # fmt: skip
        try:
            with _Cluster(workers, scheduler) as client:
                dashboard = _dashboard(client)
                if on_cluster is not None:
                    on_cluster(dashboard)
                if progress is not None:
                    progress(0, len(todo), None)
                _run_all(client, task, todo, records, progress)
        finally:
            # Scenes cut short by Ctrl-C or a killed worker leave temporary files named by
            # their process; once the workers are gone, sweep them (only dead processes').
            sweep_stale(outdir)
    ordered = [records[s.id] for s in todo_scenes]
    figures = [(c, kind) for c, kind, _ in FIGURES.get(job, ())]
    if job == "flood":  # which scene each was compared with
        figures.insert(0, ("before", "str"))
    catalogue = write_catalogue(ordered, outdir, raster_io.get(io_backend), figures)
    return ManyResult(ordered, catalogue, dashboard, time.perf_counter() - start)


@dataclass(frozen=True)
class _SceneTask:
    """Everything a worker needs to run one scene, shipped once per task (small, picklable)."""

    outdir: Path
    job: str
    model: Any
    products: Sequence[str] | None
    quicklook: bool
    threads: int | None
    overwrite: bool
    io_backend: str
    digest: str
    options: dict[str, Any]

    def __call__(self, scene: Scene) -> dict[str, Any]:
        return run_scene(self, scene)


def run_scene(task: _SceneTask, scene: Scene) -> dict[str, Any]:
    """One scene, on a worker: predict, then record it in the scene's manifest.

    Never raises for a scene that fails: the record carries the one-line error, so one bad
    scene of fifty does not stop the others.
    """
    start = time.perf_counter()
    mpath = manifest_path(task.outdir, scene.id, task.job)
    previous = read_manifest(mpath) or {}
    record: dict[str, Any] = {"scene": scene.id, "path": str(scene.path), "job": task.job}
    if scene.before is not None:
        record["before"] = str(scene.before)
    plan = _plan(task, scene)
    # Outputs this run's own manifests planned before (a scene killed after its commit but
    # before its manifest, or redone with new options) are ours to replace; others' are kept.
    planned = {**(previous.get("planned") or {}), **{k: str(v) for k, v in plan.items()}}
    ours = {str(p) for p in (previous.get("planned") or {}).values()}
    mine = all(str(p) in ours for p in plan.values() if p.exists())
    try:
        if not scene.path.is_file():  # before hashing it: predict's words for a missing scene
            raise RasterError(f"input raster {scene.path} does not exist; check the path")
        fp = file_fingerprint(scene.path, previous.get("scene"))
        before_fp = None
        if scene.before is not None:
            before_fp = {"path": str(scene.before),
                         **file_fingerprint(scene.before, previous.get("before"))}  # fmt: skip
        be, model_fp = _session(task, scene)
        write_manifest(mpath, {"status": "running", "planned": planned, "options": task.digest})
        with warnings.catch_warnings():  # the run's notes go to the manifest, not stderr
            warnings.simplefilter("ignore", InferenceWarning)
            result = predict(
                scene.path, be, {k: v for k, v in plan.items() if k != "quicklook"},
                job=task.job, quicklook=plan.get("quicklook"),
                overwrite=task.overwrite or mine, io_backend=task.io_backend,
                before=scene.before, **task.options,
            )  # fmt: skip
    except Exception as exc:
        record.update(status="failed", error=_one_line(exc), seconds=time.perf_counter() - start)
        record["footprint"] = _footprint(scene, task.io_backend)
        write_manifest(mpath, {"status": "failed", "planned": planned, "record": record})
        return record
    s = result.summary
    record.update(
        status="done", **{c: getattr(s, attr) for c, _, attr in FIGURES.get(task.job, ())},
        notes=result.notes, seconds=time.perf_counter() - start,
        output=str(result.files.get("vector", "")),
        outputs={k: str(v) for k, v in result.files.items()},
        footprint=_footprint(scene, task.io_backend),
    )  # fmt: skip
    write_manifest(mpath, {
        "status": "done", "sarmae": __version__, "planned": planned, "options": task.digest,
        "scene": fp, "before": before_fp, "model": model_fp,
        "outputs": outputs_record(result.files), "record": record,
    })  # fmt: skip
    return record


def _plan(task: _SceneTask, scene: Scene) -> dict[str, Path]:
    stem = task.outdir.absolute() / f"{scene.id}_{task.job}"
    names = {"vector": ".gpkg", "class": ".tif", "probability": "_probability.tif"}
    plan = {p: Path(f"{stem}{names[p]}") for p in (task.products or ["vector"])}
    if task.quicklook:
        plan["quicklook"] = Path(f"{stem}.png")
    return plan


def _session(task: _SceneTask, scene: Scene) -> tuple[Any, dict[str, Any] | None]:
    """The worker's warm backend for this scene's model, and the model file's fingerprint."""
    model = task.model
    if not isinstance(model, (str, os.PathLike)):
        # an object backend (CFAR) keeps per-scene state: a copy for each scene
        return copy.copy(model), None
    if isinstance(model, str) and model in JOBS:  # the bundled variant for the scene's bands
        model = bundled_for_raster(model, scene.path, task.options.get("bands"), BUNDLED_DIR,
                                   raster_io.get(task.io_backend))  # fmt: skip
    path = resolve_model_path(model).resolve()
    backend, device = task.options.get("backend", "auto"), task.options.get("device", "auto")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, backend, device, task.threads)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            if path.suffix.lower() == ".onnx" and backend != "torch":
                be = OnnxBackend(path, device=device, threads=task.threads or 1)
            else:
                be = load_backend(path, backend, device)
            _SESSIONS[key] = (be, file_fingerprint(path))
        return _SESSIONS[key]


def _run_all(
    client: Any,
    task: _SceneTask,
    todo: list[Scene],
    records: dict[str, dict[str, Any]],
    progress: Callable[[int, int, dict[str, Any]], Any] | None,
) -> None:
    from dask.distributed import as_completed

    # pure=False: a scene is rerun when asked, never served from Dask's cache of results
    futures = {client.submit(task, s, pure=False, key=f"scene-{s.id}"): s for s in todo}
    for done, future in enumerate(as_completed(futures), start=1):
        scene = futures[future]
        try:
            record = future.result()
        except Exception as exc:  # the worker died (out of memory, killed): Dask says which
            record = {"scene": scene.id, "path": str(scene.path), "job": task.job,
                      "status": "failed", "error": _one_line(exc),
                      "footprint": _stac_rings(scene)}  # fmt: skip
        records[scene.id] = record
        if progress is not None:
            progress(done, len(todo), record)


def not_sync_cancel_race(record: logging.LogRecord) -> bool:
    """False for the NameError distributed (2026.8) logs when Ctrl-C or SIGTERM reaches the
    client before its request to the scheduler has started: ``distributed.utils.sync`` then
    schedules a ``cancel()`` that reads a ``future`` not yet assigned, in the event-loop thread.
    Nothing was running to cancel, and the run still stops and removes what it started, so the
    page of tornado internals under "cancelled: ... nothing was written" says nothing true."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (
        isinstance(exc, NameError)
        and "'future'" in str(exc)
        and record.getMessage().startswith("Exception in callback")
    )


class _Cluster:
    """A client of an existing scheduler, or of a local cluster started (and stopped) here."""

    def __init__(self, workers: int | None, scheduler: str | None) -> None:
        try:
            import dask
            import dask.distributed
        except ImportError as exc:  # the [many] extra: one-scene users need no Dask
            raise ConfigError(
                f"many scenes run on Dask, which is not installed ({exc.name}): "
                "pip install 'sarmae[many]'"
            ) from exc

        self.address = scheduler or dask.config.get("scheduler-address", None)
        if self.address and workers:
            raise ConfigError(f"--workers sizes a local cluster; the cluster at {self.address} "
                              "has its own workers: leave one of them out")  # fmt: skip
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.cluster = self.client = None

    def __enter__(self) -> Any:
        from dask.distributed import Client, LocalCluster
        from dask.system import CPU_COUNT  # cores this process may use (affinity, cgroups)

        # the client's event loop logs its callbacks' errors here (addFilter keeps one copy)
        logging.getLogger("tornado.application").addFilter(not_sync_cancel_race)

        if self.address:
            try:
                self.client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {self.address} ({_one_line(exc)}); "
                    "start it (dask scheduler) or leave --scheduler/DASK_SCHEDULER_ADDRESS "
                    "unset for a local cluster"
                ) from exc
            return self.client
        # Dask's own start/stop chatter (INFO) would bury the bar; its errors still show.
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("distributed").setLevel(logging.ERROR)
        # Processes, not threads: GDAL and the polygon tracing hold the GIL in places, and a
        # worker that dies (memory) takes only its scene with it.
        self.cluster = LocalCluster(
            n_workers=self.workers or CPU_COUNT, threads_per_worker=1, processes=True,
            silence_logs=logging.ERROR,
        )  # fmt: skip
        self.client = Client(self.cluster)
        from .dask_worker import QuietTeardown  # imports distributed: only with a cluster

        self.client.register_plugin(QuietTeardown(), name="sarmae-quiet-teardown")
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _dashboard(client: Any) -> str | None:
    try:
        return client.dashboard_link
    except Exception:  # no dashboard (bokeh missing, or the scheduler runs without one)
        return None


def _footprint(scene: Scene, io_backend: str) -> Any:
    try:
        return footprint(scene.path, raster_io.get(io_backend)) or _stac_rings(scene)
    except Exception:  # an unreadable scene: its STAC outline if it has one
        return _stac_rings(scene)


def _stac_rings(scene: Scene) -> Any:
    return [list(r) for r in scene.footprint] if scene.footprint else None


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, SarmaeError) or (isinstance(exc, (OSError, ValueError)) and text):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _predict_options() -> set[str]:
    return set(OPTION_NAMES) - _OWN


def _run_key(job: str, model: Any, products: Any, quicklook: bool, threads: Any,
             options: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What makes a scene's outputs what they are, besides the scene and the model file."""
    # Every option with its value or predict's default: the CLI (which passes them all) and
    # a Python call (which passes a few) make the same key for the same run.
    every = RunOptions.of(**options).as_dict()
    kept = {k: every[k] for k in sorted(_predict_options() - _NOT_IN_KEY)}
    aoi = kept.get("aoi")
    if isinstance(aoi, (str, os.PathLike)) and Path(aoi).is_file():
        kept["aoi"] = file_fingerprint(aoi)["sha256"]
    if isinstance(model, (str, os.PathLike)):
        spec = str(model)
    else:  # an object backend: its class and parameters (CfarDetector's params dataclass)
        info = getattr(model, "info", None)
        params = getattr(model, "params", "")
        tile = getattr(info, "tile_size", None)
        spec = f"{type(model).__module__}.{type(model).__qualname__}({params!r}, tile={tile})"
    return {"sarmae": __version__, "job": job, "model": spec, "products": products,
            "quicklook": quicklook, "threads": threads, "options": kept}  # fmt: skip

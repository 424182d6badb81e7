"""``predict``: a SAR model over a whole georeferenced raster, to GeoTIFFs and GeoPackages.

One call validates everything it can before any work (model, task, outputs, raster, units,
bands, area), then sweeps the raster in windows with bounded memory, writes every output under
a temporary name and renames them into place only when the run has succeeded. A failed or
cancelled run leaves nothing behind; an existing file is only replaced when asked.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.metadata import ModelInfo
from ..errors import ConfigError, InputError
from .checks import check_work, disk_full
from .geo.aoi import Region, resolve_aoi
from .geo.geodesy import EqualArea, pixel_size_m
from .geo.georef import Transform
from .io import raster_io
from .io.writers import BLOCK, OutputSet
from .model.backends import BUNDLED_DIR, Backend, load_backend
from .model.bundled import bundled_for_raster
from .model.detection import fit_boxes_to_hulls, hull_db
from .notes import Notes
from .options import RunOptions, check_paths
from .products.change import ChangeLayers, check_flood_basis, check_layers
from .products.quicklook import boxes_from_gpkg, write_quicklook
from .products.rasters import SegmentationSink, kept_channels, plan_outputs
from .products.result import PredictionResult, PredictionSummary
from .products.vectorize import PolygonOptions, PolygonProduct, write_detections
from .scene.source import PairSource, SarSource
from .sweep.blending import Sink
from .sweep.engine import Canceller, SweepStats, run_tiles, sweep_detection, sweep_segmentation
from .sweep.regrid import OutputWindow, ToInputGrid
from .sweep.windows import TileGrid

#: What each named job needs of a model (``predict water`` / ``ships`` / ``flood``).
JOBS = {"water": "segmentation", "ships": "detection", "flood": "segmentation"}
#: GDAL's block cache for the run, MB: enough for a few tile rows of reads and writes, and a
#: fixed bound, so memory does not follow the raster size (GDAL's default is 5 % of RAM).
GDAL_CACHE_MB = 64


def predict(
    raster: str | os.PathLike,
    model: Any = "water",
    output: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    options: RunOptions | None = None,
    *,
    progress: Callable[[float], Any] | None = None,
    cancel: Any = None,
    **settings: Any,
) -> PredictionResult:
    """Run a segmentation (water) or detection (ships) model over a whole SAR raster.

    Args:
        raster: any raster GDAL reads (GeoTIFF/COG, VRT, Sentinel-1 measurement TIFF); for a
            flood (two-date) model, the scene after the event.
        model: a bundled model name (``water``, ``ships``), a path to an ``.onnx`` file or a
            checkpoint, a torch task model, ``cfar`` (CA-CFAR ship detection, no learning;
            ``CfarDetector(CfarParams(...))`` to set its windows and PFA), or a
            :class:`~sarmae_core.inference.Backend`.
            ``water`` runs the bundled VV+VH model (``water_vvvh``) on scenes with VV and VH
            bands, the VV model otherwise or when ``bands`` names one band.
        output: output path; ``.tif`` writes a class map, ``.gpkg`` polygons or ship boxes
            (default: ``<raster>_<model>.gpkg`` beside the input). See ``products``. Or a
            mapping ``{"vector": "w.gpkg", "class": "mask.tif", "probability": ...}``.
        options: the run's settings as one :class:`~.options.RunOptions`; or give them as
            keywords (``settings``), which also override those of ``options``:
        before: the scene before the event, for a two-date model (``flood``): read on the
            after scene's grid, whatever its own grid or CRS; a pair that does not overlap
            is refused.
        aoi: area of interest: ``(xmin, ymin, xmax, ymax)`` in ``aoi_crs`` (default the
            raster's CRS), GeoJSON polygons, or a vector file of polygons.
        aoi_crs: CRS of a box or GeoJSON ``aoi``, e.g. ``"EPSG:4326"``.
        tile, overlap: tile side and overlap in pixels (default: the model's).
        batch_size: tiles per model call.
        backend: ``auto``, ``onnxruntime`` or ``torch``; ``device``: ``auto``, ``cuda``, ``cpu``.
        units: input units (``db``, ``intensity``, ``amplitude``, ``complex``); default: from
            the file's metadata, else guessed (and said).
        bands: band name or 1-based index for each model channel; default: by polarisation.
        products: any of ``class``, ``probability``, ``vector`` (files named after ``output``).
        job: ``water`` or ``ships`` to insist on the matching model task (default: from a
            bundled model's name, else any segmentation or detection model).
        threshold: foreground probability (segmentation) or detection confidence; default:
            the model's.
        boxes: ships: ``hull`` (default) redraws each box of a learned model around the bright
            hull under it (:func:`.model.detection.fit_boxes_to_hulls`); ``model`` keeps the
            model's own boxes.
        min_area_m2, fill_holes_m2, simplify_m: polygon cleaning (areas in m2, tolerance in m).
        cog: write Cloud-Optimized GeoTIFFs.
        quicklook: also write a PNG of the scene with the results drawn over it; part of the
            run's outputs (checked, written and committed with them).
        overwrite: replace existing outputs (never a file the run reads).
        force: run even when the work looks absurd (billions of pixels) or may not fit the
            disk or memory (:func:`.checks.check_work`).
        allow_optical: run on an image that looks optical (8-bit RGB).
        resolution_tolerance: relative pixel-size mismatch tolerated before the input is
            resampled to the model's resolution; raster outputs stay on the input's grid.
        progress: called with the percentage done (0-100), e.g. ``QgsTask.setProgress``.
        cancel: a ``threading.Event`` or a callable returning True to stop
            (``QgsTask.isCanceled``); stopping raises :class:`CancelledError`.
        io_backend: the library that reads and writes files: ``gdal`` (GDAL's Python
            bindings), ``rasterio``, or ``auto`` (default, or ``$SARMAE_IO``: GDAL's bindings
            when they import, else rasterio).

    Returns:
        The files written, a summary (areas, ship count, time, pixels) and the run's notes.

    Raises:
        RasterError: unreadable input, unwritable or existing output.
        InputError: input the model cannot take (units, bands, optical, no valid pixels).
        CheckpointError: a missing, damaged or foreign model file.
        ConfigError: a wrong or unknown option, contradictory options, or a model that does
            not do the job.
        CancelledError: the run was cancelled; nothing was written.
    """
    opts = RunOptions.of(options, **settings)
    check_paths(raster, output, opts)
    start = time.perf_counter()
    notes = Notes()
    canceller = Canceller(cancel)
    report = _progress(progress)
    job = opts.job
    if job is None and isinstance(model, str) and model in JOBS:
        job = model
    files_io = raster_io.get(opts.io_backend)
    if job == "flood":
        check_flood_basis(opts.before, opts.reference_water)
    if model == "flood" and opts.before is None and opts.reference_water is not None:
        # flood against the user's reference water: the water model maps the after date
        model, job = "water", "flood"
    if isinstance(model, str) and model in JOBS and not Path(model).exists():
        # the job's bundled model: the variant for the scene's bands (VV+VH water when both)
        model = bundled_for_raster(model, raster, opts.bands, BUNDLED_DIR, files_io, notes)
    be = load_backend(model, opts.backend, opts.device, notes)
    info = be.info
    task = check_task(info.task, job, model)
    before = opts.before
    check_dates(info, job, before, model)
    if job is None and info.dates:
        job = "flood"  # a two-date model given by path maps flood as the bundled one does
    check_layers(job, opts.reference_water, opts.hand, opts.dem)
    tile, overlap = _tiling(be, opts.tile, opts.overlap)
    batch = model_batch(be, opts.batch_size, tile)
    if output is None:
        name = Path(str(model)).stem if isinstance(model, (str, os.PathLike)) else task
        output = Path(raster).with_name(f"{Path(raster).stem}_{name}.gpkg")
    plan = plan_outputs(output, task, opts.products)
    quicklook = opts.quicklook
    if quicklook is not None:
        plan["quicklook"] = Path(quicklook)
    aoi = opts.aoi
    layers = (aoi, model, before, opts.reference_water, opts.hand, opts.dem)
    reads = [raster] + [p for p in layers if isinstance(p, (str, os.PathLike))]
    outputs = OutputSet(plan, overwrite=opts.overwrite, reads=reads)
    stats = SweepStats()
    sinks: list[SegmentationSink] = []
    need = 0
    tiles = None
    try:
        reading = dict(units=opts.units, bands=opts.bands, allow_optical=opts.allow_optical,
                       resolution_tolerance=opts.resolution_tolerance, notes=notes,
                       fileio=files_io, check_cancel=canceller.check)  # fmt: skip
        with files_io.environment(GDAL_CACHE_MB), (
            PairSource(raster, before, info, **reading) if info.dates  # type: ignore[arg-type]
            else SarSource(raster, info, **reading)
        ) as source:  # fmt: skip
            region = resolve_aoi(
                aoi, opts.aoi_crs, source.crs, source.transform, source.width, source.height, notes,
                source.fileio,
            )  # fmt: skip
            grid = TileGrid(region.height, region.width, tile, overlap)
            if hasattr(be, "set_pixel_size"):  # CFAR's minimum ship area in m2
                be.set_pixel_size(source.pixel_size_m)
            need = _check_work(source, region, grid, info, outputs, opts.force)
            stats.timings["setup"] = time.perf_counter() - start  # model load, raster checks
            done = [0]

            def on_batch(n: int) -> None:
                done[0] += n
                report(90.0 * done[0] / len(grid))

            run = _Run(source, region, grid, info, outputs, stats, canceller, report, job, sinks,
                       notes)  # fmt: skip
            tiles = run_tiles(source, region, be, grid, batch, canceller, stats, on_batch)
            if task == "segmentation":
                cleaning = PolygonOptions(opts.min_area_m2, opts.fill_holes_m2, opts.simplify_m)
                summary = _segment(run, tiles, opts, cleaning, sinks)
            else:
                summary = _detect(run, tiles, opts.threshold, opts.boxes)
            if quicklook is not None:
                _quicklook(run, raster)
            canceller.check()
            files = outputs.commit()
    except BaseException as exc:
        if tiles is not None:  # stop the model's worker thread before cleaning up
            tiles.close()
        for sink in sinks:
            sink.close()
        outputs.rollback()
        full = disk_full(exc, outputs.folders, need) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from exc
        raise
    report(100.0)
    seconds = time.perf_counter() - start
    stats.timings.update(
        read=stats.read_s, model=stats.model_s, wait=stats.wait_s, stitch=stats.stitch_s
    )
    return PredictionResult(
        files=files,
        task=task,
        model=str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        backend=be.name,
        providers=list(be.providers),
        io_backend=source.fileio.name,
        units=source.units,
        crs=source.crs.to_string() if source.crs is not None else None,
        summary=PredictionSummary(
            seconds=seconds,
            model_seconds=stats.model_s,
            pixels_processed=stats.valid_pixels,
            megapixels_per_second=stats.valid_pixels / 1e6 / seconds,
            tiles=stats.tiles,
            tiles_run=stats.tiles_run,
            timings=stats.timings,
            **summary,
        ),
        notes=list(notes),
    )


@dataclass
class _Run:
    """What the product steps of one run share."""

    source: SarSource
    region: Region
    grid: TileGrid
    info: ModelInfo
    outputs: OutputSet
    stats: SweepStats
    canceller: Canceller
    report: Callable[[float], None]
    job: str | None
    sinks: list[SegmentationSink]
    notes: Notes


def _segment(
    run: _Run,
    tiles: Any,
    opts: RunOptions,
    options: PolygonOptions,
    sinks: list[SegmentationSink],
) -> dict[str, Any]:
    """Blend and write the raster products, then trace polygons; returns summary figures.

    Products are written on the input's grid: the region itself, or, when tiles were read
    resampled to the model's resolution, the input pixels it covers (:mod:`.regrid`). A flood
    run takes the user's reference water and HAND out of the map (:mod:`.products.change`).
    """
    info, region, stats, source = run.info, run.region, run.stats, run.source
    threshold, cog = opts.threshold, opts.cog
    plan = run.outputs.paths
    keep = kept_channels(len(info.class_names))
    out = _output_window(source, region)
    area = _equal_area(source, out.transform, out.width, out.height)
    change = None
    observed = None
    if run.job == "flood" and info.dates and "water" in plan:
        observed = _observed_water(run, opts)
    if run.job == "flood":
        change = ChangeLayers(
            source.fileio, opts.reference_water, opts.hand, opts.hand_threshold_m, source.crs,
            out.transform, out.width, out.height, run.notes, opts.dem, opts.incidence_deg,
            source.orbit_direction,
            pixel_size_m(source.fileio, source.crs, out.transform, out.width, out.height),
            observed,
        )  # fmt: skip
    gpkg = polygons = None
    try:  # the layer is closed here if anything fails before the sink owns it
        if "vector" in plan:  # traced strip by strip while the sweep makes the map
            gpkg = source.fileio.feature_writer(
                run.outputs.temp("vector"), _layer_name(run.job, info.class_names), source.crs,
                [("class", "int"), ("class_name", "str"), ("area_m2", "real")],
            )  # fmt: skip
            polygons = PolygonProduct(
                source.fileio, gpkg, info.class_names, out.transform, out.width, out.height,
                pixel_size_m(source.fileio, source.crs, out.transform, out.width, out.height),
                area, options, run.canceller.check,
            )  # fmt: skip
        sink = SegmentationSink(
            source.fileio, run.outputs, tuple(plan), info.class_names,
            info.seg_threshold if threshold is None else threshold, source.crs, out.transform,
            out.width, out.height, source.nodata,
            area.row_pixel_areas(out.transform, out.width, out.height) if area else None, keep,
            change, polygons,
        )  # fmt: skip
    except BaseException:
        if polygons is not None:
            polygons.close()  # closes the layer too
        elif gpkg is not None:
            gpkg.close()
        raise
    sinks.append(sink)  # closed by the caller if anything fails (with its polygon product)
    target: Sink = sink
    if source.resampled:
        target = ToInputGrid(
            sink, (region.height, region.width), (region.row, region.col), source.input_scale,
            out, source.input_valid, BLOCK,
        )  # fmt: skip
    sweep_segmentation(tiles, run.grid, keep, BLOCK, target, stats)
    if isinstance(target, ToInputGrid):
        stats.timings["regrid"] = target.seconds
    stats.valid_pixels = sink.valid_pixels
    _require_valid(stats, source)
    run.canceller.check()
    t = time.perf_counter()
    sink.finish(run.outputs, cog, run.canceller.check)
    stats.timings["finish"] = time.perf_counter() - t
    stats.timings["write"] = sink.write_s
    summary = _class_areas(sink, source.crs is not None, run.job)
    if change is not None and source.crs is not None and (not info.dates or observed):
        summary["observed_water_km2"] = sink.observed_area_m2 / 1e6
    if polygons is not None:
        run.report(92.0)
        total = polygons.finish()
        if polygons.tracer.parts_cut:
            run.notes.info(
                f"{polygons.tracer.parts_cut} pieces of regions too large to hold as one polygon "
                f"(over {polygons.tracer.max_vertices:,} vertices) were written cut along "
                "strip edges; dissolve by class to join them"
            )
        summary["vector_area_km2"] = total / 1e6 if np.isfinite(total) else None
        stats.timings["vectorise"] = polygons.seconds
        stats.timings.update({f"vectorise_{k}": v for k, v in polygons.stages.items()})
        stats.timings["vectorise_wait"] = polygons.wait_s
    return summary


def _observed_water(run: _Run, opts: RunOptions) -> Path:
    """A two-date run asked for the water on the after date: the bundled water model maps the
    after scene (same area, units and IO) into a scratch class map, read beside the flood."""
    path = run.outputs.scratch("observed_water.tif")
    after = run.source.after.path
    water = dataclasses.replace(
        RunOptions(), aoi=opts.aoi, aoi_crs=opts.aoi_crs, units=opts.units, backend=opts.backend,
        device=opts.device, io_backend=run.source.fileio.name, overwrite=True,
        resolution_tolerance=opts.resolution_tolerance, allow_optical=opts.allow_optical,
        force=opts.force,
    )  # fmt: skip
    res = predict(after, "water", {"class": path}, water, cancel=run.canceller.cancel)
    for note in res.notes:
        run.notes.info(f"observed water: {note}")
    return path


def _check_work(
    source: SarSource,
    region: Region,
    grid: TileGrid,
    info: ModelInfo,
    outputs: OutputSet,
    force: bool,
) -> int:
    """Estimate the run before starting it: see :func:`.checks.check_work`."""
    out = _output_window(source, region)
    scale_r, scale_c = source.input_scale
    input_px = (round(region.height * scale_r), round(region.width * scale_c))
    band_bytes = 0
    if info.task == "segmentation":
        # the blender's band: sums of weighted probabilities, of weights, and validity
        rows = min(region.height, grid.tile + BLOCK)
        band_bytes = rows * region.width * (4 * len(kept_channels(len(info.class_names))) + 5)
    return check_work((region.height, region.width), input_px, (out.height, out.width),
                      list(outputs.paths), band_bytes, outputs.folders, force)  # fmt: skip


def _quicklook(run: _Run, raster: str | os.PathLike) -> None:
    """Write the quicklook under its temporary name, from the other products' temporary files."""
    outputs, source = run.outputs, run.source
    boxes = None
    if run.info.task == "detection":
        boxes = boxes_from_gpkg(outputs.current("vector"), raster, source.fileio)
    classes = outputs.current("class")
    if classes is None:  # the foreground mask traced for polygons shows the same water
        classes = getattr(run.sinks[0], "mask_path", None) if run.sinks else None
    units = source.units if source.units != "complex" else "intensity"
    before = source.before.path if isinstance(source, PairSource) else None
    write_quicklook(
        raster, outputs.temp("quicklook"), units, class_raster=classes, boxes_px=boxes,
        overwrite=True, fileio=source.fileio, before=before,
    )  # fmt: skip


def _equal_area(
    source: SarSource, transform: Transform, width: int, height: int
) -> EqualArea | None:
    """Ground measures for a grid of the source's CRS (None in pixel space)."""
    if source.crs is None:
        return None
    return EqualArea.for_grid(source.fileio, source.crs, transform, width, height)


def _output_window(source: SarSource, region: Region) -> OutputWindow:
    """Where raster products go: the region, or the input pixels it covers when resampled."""
    if not source.resampled:
        return OutputWindow(region.row, region.col, region.height, region.width, region.transform)
    return OutputWindow.covering(
        (region.row, region.col, region.height, region.width), source.input_scale,
        source.input_transform, (source.input_height, source.input_width),
    )  # fmt: skip


def _detect(run: _Run, tiles: Any, threshold: float | None, boxes: str) -> dict[str, Any]:
    """Decode, suppress across tiles, fit boxes to hulls and write them; returns summary
    figures."""
    info, stats = run.info, run.stats
    conf = info.det_confidence if threshold is None else threshold
    dets = sweep_detection(tiles, run.grid, conf, info.det_iou_threshold, stats)
    _require_valid(stats, run.source)
    run.canceller.check()
    region = run.region
    if boxes == "hull" and "detections" not in info.outputs:  # CFAR boxes are its own pixels
        t = time.perf_counter()
        dets = fit_boxes_to_hulls(
            dets, lambda *window: _read_db(run, *window), (region.height, region.width),
            info.det_iou_threshold,
        )  # fmt: skip
        stats.timings["fit_hulls"] = time.perf_counter() - t
    t = time.perf_counter()
    count = write_detections(
        run.source.fileio, run.outputs.temp("vector"), dets, info.class_names, run.source.crs,
        region.transform, run.source.pixel_size_m,
        _equal_area(run.source, region.transform, region.width, region.height),
    )  # fmt: skip
    stats.timings["vectorise"] = time.perf_counter() - t
    return {"ship_count": count}


def _read_db(run: _Run, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, ...]:
    """A window of the region as intensity in dB (the channels' mean) and its valid pixels."""
    region = run.region
    data, valid = run.source.read(region.row + row, region.col + col, height, width)
    inside = region.mask(row, col, height, width)
    if inside is not None:
        valid &= inside
    db, bright = hull_db(data, run.info.units)
    return db, valid & bright


def _progress(callback: Callable[[float], Any] | None) -> Callable[[float], None]:
    if callback is None:
        return lambda _p: None
    return lambda p: callback(float(min(100.0, max(0.0, p))))


def check_task(task: str, job: str | None, model: Any) -> str:
    """The task of a model that can do ``job`` (any of :data:`JOBS` when None); ``model``
    names it in the message (the QGIS plugin refuses a model by this rule too).

    Raises:
        ConfigError: an unknown job, a classification model, or a model for another job.
    """
    if job is not None and job not in JOBS:
        raise ConfigError(f"unknown job {job!r}; use {' or '.join(JOBS)}")
    if task == "classification":
        raise ConfigError(
            f"{model} is a classification model: it labels whole image patches, while predict "
            "maps pixels (segmentation, e.g. water) or objects (detection, e.g. ships). Use a "
            "segmentation or detection model"
        )
    if job is not None and JOBS[job] != task:
        raise ConfigError(
            f"{model} is a {task} model, but predicting {job} needs a {JOBS[job]} model"
        )
    return task


def job_for(info: ModelInfo) -> str | None:
    """The job a model does: ``flood`` for a two-date model, else ``water`` for segmentation and
    ``ships`` for detection; None for a model predict cannot run (classification)."""
    if info.task == "segmentation" and info.dates:
        return "flood"
    return {"segmentation": "water", "detection": "ships"}.get(info.task)


def check_dates(info: ModelInfo, job: str | None, before: Any, model: Any) -> None:
    """A two-date (flood) model needs the before scene; a single-date model takes none (it
    maps flood against the user's reference water, :func:`.change.check_flood_basis`).

    Raises:
        ConfigError: naming what to give or leave out.
    """
    if info.dates and before is None:
        raise ConfigError(
            f"{model} maps change between two dates: give the scene before the event "
            "(before=..., --before BEFORE.tif)"
        )
    if not info.dates and before is not None:
        raise ConfigError(
            f"{model} maps one date; before= is for a two-date (flood) model: leave it out, or "
            "use model='flood'"
        )


def _tiling(be: Backend, tile: int | None, overlap: int | None) -> tuple[int, int]:
    info = be.info
    fixed = be.tile_shape
    if tile is None:
        tile = fixed[0] if fixed else info.tile_size
    if fixed and (tile, tile) != tuple(fixed):
        raise ConfigError(
            f"this model takes tiles of exactly {fixed[0]} x {fixed[1]} px; "
            f"tile={tile} cannot be used (leave tile unset)"
        )
    if tile % info.tile_step:
        raise ConfigError(f"tile {tile} px is not a multiple of the model's {info.tile_step} px")
    if overlap is None:
        overlap = min(info.tile_overlap, tile // 2)
    return tile, overlap


#: Pixels a model call holds at most on a CPU: 8 tiles of 256 px, 2 of 512 px. The model's
#: working memory grows with the pixels of a call (the bundled Water model on 512 px tiles, the
#: model alone: 293 MB for 2 tiles, 873 MB for 8), and on a CPU 2 tiles of 512 px run as fast per
#: pixel as more (34 ms a tile against 38-40 ms for 4 or 8).
CPU_BATCH_PIXELS = 8 * 256 * 256
#: Where the cap holds: the providers a model runs on with the computer's own memory.
_CPU_PROVIDERS = {"CPUExecutionProvider", "cpu", "python", "numpy"}


def model_batch(be: Backend, batch_size: int, tile: int) -> int:
    """Tiles per model call: ``batch_size``, cut on a CPU to what :data:`CPU_BATCH_PIXELS`
    holds (at least one tile), so that large tiles keep peak memory bounded; a GPU takes the
    batch asked for."""
    if not set(be.providers[:1]) <= _CPU_PROVIDERS:
        return batch_size
    return min(batch_size, max(1, CPU_BATCH_PIXELS // (tile * tile)))


def _require_valid(stats: SweepStats, source: SarSource) -> None:
    if stats.tiles_run == 0:
        raise InputError(
            f"no valid pixels in the area processed of {source.path.name}: every pixel there "
            "is nodata, NaN or outside the area of interest; nothing was written"
        )


def _class_areas(sink: SegmentationSink, georeferenced: bool, job: str | None) -> dict[str, Any]:
    if not georeferenced:
        return {}
    names = sink.class_names
    areas = {n: float(a) / 1e6 for n, a in zip(names, sink.class_area_m2, strict=False)}
    if len(names) == 1:  # a one-channel model: channel = foreground probability
        areas = {names[0]: float(sink.class_area_m2[1]) / 1e6}
    water = next((a for n, a in areas.items() if n.lower() == "water"), None)
    if water is None and job == "water" and len(names) == 2:
        water = areas[names[1]]
    return {"class_area_km2": areas, "water_area_km2": water}


def _layer_name(job: str | None, class_names: Sequence[str]) -> str:
    for name in ("flood", "water"):
        if job == name or any(n.lower() == name for n in class_names):
            return name
    return "polygons"

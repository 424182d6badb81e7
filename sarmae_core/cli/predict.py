"""``sarmae predict water|ships|flood SCENE``: maps from a SAR scene with a bundled or given
model (flood: the scene after the event, and ``--before`` the scene before it)."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import click

from ..errors import ConfigError
from . import log_level, verbose_option

log = logging.getLogger("sarmae")


def _aoi(value: str | None):
    """``xmin,ymin,xmax,ymax`` or a vector file of polygons."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) == 4:
        try:
            return tuple(float(p) for p in parts)
        except ValueError:
            pass
    path = Path(value)
    if not path.exists():
        raise ConfigError(
            f"--aoi {value!r} is neither xmin,ymin,xmax,ymax nor an existing vector file"
        )
    return path


def _options(func):
    """Options shared by ``predict water`` and ``predict ships``."""
    opts = [
        click.argument("scene", type=click.Path(path_type=Path)),
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="GeoPackage to write (default: beside the scene)."),
        click.option("--model", "model", default=None,
                     help="Bundled model name or .onnx/.safetensors path (default: bundled)."),
        click.option("--quicklook", type=click.Path(path_type=Path),
                     help="Also write a PNG of the scene with the results over it."),
        click.option("--aoi", help="xmin,ymin,xmax,ymax (in --aoi-crs) or a polygon file."),
        click.option("--aoi-crs", help="CRS of an --aoi box, e.g. EPSG:4326 (default: scene's)."),
        click.option("--tile", type=int, help="Tile side in pixels (default: the model's)."),
        click.option("--overlap", type=int, help="Tile overlap in pixels (default: model's)."),
        click.option("--batch-size", type=int, default=4, show_default=True,
                     help="Tiles per model call (on a CPU at most 0.5 Mpx: 2 tiles of 512 px)."),
        click.option("--backend", default="auto", show_default=True,
                     type=click.Choice(["auto", "onnxruntime", "torch"])),
        click.option("--device", default="auto", show_default=True,
                     type=click.Choice(["auto", "cpu", "cuda"])),
        click.option("--units", type=click.Choice(["db", "intensity", "amplitude", "complex"]),
                     help="Units of the scene (default: from metadata, else guessed and said)."),
        click.option("--bands", help="Comma-separated band names or indexes for the model."),
        click.option("--threshold", type=float, help="Decision threshold (default: model's)."),
        click.option("--allow-optical", is_flag=True, help="Run even on an 8-bit RGB image."),
        click.option("--cog", is_flag=True, help="Write rasters as Cloud-Optimized GeoTIFFs."),
        click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
        click.option("--force", is_flag=True,
                     help="Run even when the work looks absurd or may not fit disk or memory."),
        verbose_option,
        click.option("-q", "--quiet", is_flag=True, help="Errors only; no progress bar."),
        # many scenes (SCENE a folder, glob, .txt list or STAC .json; -o a folder): cli/many.py
        click.option("--workers", type=int, help="Many scenes: local worker processes "
                     "(default: one per core)."),
        click.option("--scheduler", help="Many scenes: an existing Dask scheduler, "
                     "tcp://host:8786 (default: $DASK_SCHEDULER_ADDRESS, else local)."),
        click.option("--threads", type=int, help="Many scenes: onnxruntime threads per scene "
                     "(default 1)."),
        click.option("--asset", help="Many scenes: the STAC asset to map, e.g. vv."),
    ]  # fmt: skip
    for opt in reversed(opts):
        func = opt(func)
    return func


def _run(job: str, scene: Path, output: Path | None, products: dict[str, Path | None],
         quicklook: Path | None, **kw) -> None:  # fmt: skip
    from ..inference.batch.scenes import is_many
    from ..inference.notes import InferenceWarning
    from ..inference.options import RunOptions
    from ..inference.predict import predict as run_predict

    many = is_many(scene) or kw["workers"] is not None or kw["scheduler"] is not None
    if not many:
        if kw.pop("threads") is not None or kw.pop("asset") is not None:
            raise ConfigError(
                "--threads and --asset apply to many scenes (SCENE a folder, glob, .txt list "
                "or STAC .json); leave them out for one scene"
            )
        del kw["workers"], kw["scheduler"]
        if not scene.exists():
            raise ConfigError(f"scene {scene} does not exist")
        output = output or scene.with_name(f"{scene.stem}_{job}.gpkg")
        if output.suffix.lower() != ".gpkg":
            raise ConfigError(f"-o/--output must be a .gpkg file, got {output.name}")
    paths = {"vector": output, **{k: v for k, v in products.items() if v is not None}}
    bands = kw.pop("bands")
    kw["bands"] = [int(b) if b.isdigit() else b for b in bands.split(",")] if bands else None
    kw["aoi"] = _aoi(kw.pop("aoi"))
    model = kw.pop("model") or job
    verbose, quiet = kw.pop("verbose"), kw.pop("quiet")
    if quiet or verbose:  # the same switches as `sarmae -v/-q`, after the subcommand too
        logging.getLogger().setLevel(log_level(logging.WARNING, verbose, quiet))
    quiet = logging.getLogger().level >= logging.ERROR
    if many:
        from .many import run_many

        return run_many(job, scene, output, {**products, "quicklook": quicklook}, quiet,
                        model=model, **kw)  # fmt: skip
    options = RunOptions.of(job=job, quicklook=quicklook, **kw)
    sink = io.StringIO() if quiet else None  # -q: the bar draws into nothing
    with click.progressbar(length=100, label=f"{job}: {scene.name}", file=sink) as bar, \
            warnings.catch_warnings():  # fmt: skip
        # The run's notes are printed once, with the result (not again as Python warnings).
        warnings.simplefilter("ignore", InferenceWarning)
        done = [0]

        def progress(pct: float) -> None:
            step = int(pct) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step

        result = run_predict(scene, model, paths, options, progress=progress)
    click.echo(str(result))


@click.group()
def predict() -> None:
    """Map water, ships or new flood in SAR scenes (GeoTIFF, VRT, Sentinel-1 GRD measurement
    TIFF).

    SCENE may also name many scenes (a folder, a quoted glob, a .txt list of paths or a STAC
    ItemCollection .json) with -o a folder: they run on Dask, resumably, with a catalogue.
    """


def _map_options(kind: str):
    """Options of the jobs that map areas (water, flood): rasters beside the polygons and how
    the polygons are cleaned."""

    def wrap(func):
        opts = [
            click.option("--raster", type=click.Path(path_type=Path),
                         help=f"Also write the {kind} mask."),
            click.option("--probability", type=click.Path(path_type=Path),
                         help=f"Also write the {kind} probability GeoTIFF."),
            click.option("--min-area", "min_area_m2", type=float, default=0.0,
                         show_default=True, help=f"Drop {kind} polygons smaller than this (m2)."),
            click.option("--fill-holes", "fill_holes_m2", type=float, default=0.0,
                         show_default=True,
                         help=f"Fill holes in {kind} polygons smaller than this (m2; inf: all)."),
            click.option("--simplify", "simplify_m", type=float, default=0.0, show_default=True,
                         help="Simplify polygon outlines with this tolerance (m)."),
        ]  # fmt: skip
        for opt in reversed(opts):
            func = opt(func)
        return func

    return wrap


@predict.command()
@_options
@_map_options("water")
def water(scene, output, quicklook, raster, probability, **kw) -> None:
    """Water polygons (GeoPackage, area in m2) and optionally a mask GeoTIFF."""
    _run("water", scene, output, {"class": raster, "probability": probability}, quicklook, **kw)


def _cfar_options(func):
    """``predict ships`` options of the CA-CFAR detector
    (:mod:`sarmae_core.inference.model.cfar`)."""
    opts = [
        click.option("--detector", type=click.Choice(["model", "cfar"]), default="model",
                     show_default=True,
                     help="The learned model (--model, default: bundled) or CA-CFAR."),
        click.option("--guard", type=int, default=15, show_default=True,
                     help="CFAR guard window side (odd, px)."),
        click.option("--background", type=int, default=41, show_default=True,
                     help="CFAR background window side (odd, px)."),
        click.option("--pfa", type=float, default=1e-3, show_default=True,
                     help="CFAR probability of false alarm per pixel."),
        click.option("--looks", type=float, default=1.0, show_default=True,
                     help="CFAR clutter: gamma intensity of this many looks (1: exponential)."),
        click.option("--min-pixels", type=int, default=4, show_default=True,
                     help="CFAR: fewest detected pixels in a ship."),
        click.option("--min-area", "min_area_m2", type=float, default=0.0, show_default=True,
                     help="CFAR: smallest ship area on the ground (m2)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        func = opt(func)
    return func


@predict.command()
@_options
@click.option(
    "--before",
    type=click.Path(path_type=Path),
    help="The scene before the event (any grid or CRS that overlaps SCENE); with many "
    "scenes, the scenes before it (folder, glob, .txt, STAC .json): each after scene is "
    "paired with the one that overlaps it most.",
)
@click.option(
    "--reference-water",
    "reference_water",
    type=click.Path(path_type=Path),
    help="Water of normal times (raster, nonzero = water, or polygons), never flood. Without "
    "--before, flood is the water the water model maps on SCENE minus this.",
)
@click.option(
    "--hand",
    type=click.Path(path_type=Path),
    help="HAND raster (height above nearest drainage, m): higher pixels are excluded.",
)
@click.option(
    "--hand-threshold",
    "hand_threshold_m",
    type=float,
    default=15.0,
    show_default=True,
    help="HAND above which pixels are excluded (m).",
)
@click.option(
    "--dem",
    type=click.Path(path_type=Path),
    help="DEM (m): radar shadow and layover from its slopes are excluded (needs the after "
    "scene's orbit direction in its metadata).",
)
@click.option(
    "--incidence",
    "incidence_deg",
    type=float,
    default=39.0,
    show_default=True,
    help="Incidence angle for --dem (degrees; Sentinel-1 IW 29-46).",
)
@click.option(
    "--water",
    "observed",
    type=click.Path(path_type=Path),
    help="Also write the water observed on SCENE (with --before: the bundled water model's "
    "map, a second pass).",
)
@click.option(
    "--likelihood",
    type=click.Path(path_type=Path),
    help="Also write the flood likelihood GeoTIFF (0-100 %, 255 no data).",
)
@click.option(
    "--exclusion",
    type=click.Path(path_type=Path),
    help="Also write the exclusion mask GeoTIFF (1 HAND, 2 no data, 3 shadow/layover).",
)
@_map_options("flood")
def flood(scene, output, quicklook, raster, probability, likelihood, exclusion, observed,
          **kw) -> None:  # fmt: skip
    """New flood on SCENE (after the event): against --before, the scene before it, and/or
    --reference-water, the water of normal times.

    Flood polygons (GeoPackage, area in m2) and a map with classes 1 flood, 2 reference water,
    3 excluded (--hand). With --before, a two-date model (default: the bundled flood model)
    maps new water; with --reference-water alone, the water model maps SCENE and reference
    water is taken out. Everything is on SCENE's grid.
    """
    rasters = {"class": raster, "probability": probability, "likelihood": likelihood,
               "exclusion": exclusion, "water": observed}  # fmt: skip
    _run("flood", scene, output, rasters, quicklook, **kw)


@predict.command()
@_options
@_cfar_options
@click.option("--boxes", type=click.Choice(["hull", "model"]), default="hull", show_default=True,
              help="hull: each box of the model redrawn around the bright hull under it; "
                   "model: the model's own boxes (CFAR's are its pixels either way).")  # fmt: skip
def ships(scene, output, quicklook, detector, guard, background, pfa, looks, min_pixels,
          min_area_m2, **kw) -> None:  # fmt: skip
    """Ship boxes (GeoPackage: score, class, length/width in m, centre coordinates).

    --detector cfar runs cell-averaging CFAR instead of a model (land: pass sea polygons as
    --aoi); its options are ignored by the model detector.
    """
    if detector == "cfar":
        from ..inference.model.cfar import CfarDetector, CfarParams

        if kw["model"] is not None:
            raise ConfigError("--detector cfar takes no --model; leave one of them out")
        params = CfarParams(guard, background, pfa, looks, min_pixels, min_area_m2)
        kw["model"] = CfarDetector(params, tile=kw["tile"] or 512)
    _run("ships", scene, output, {}, quicklook, **kw)

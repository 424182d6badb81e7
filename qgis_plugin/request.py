"""From what the dock or Processing collected to a validated run (main thread, no pixels read).

:func:`plan_run` is the one path both take: the model (or CA-CFAR), the engine's checks of the
scenes against it, and the engine's :class:`~sarmae_core.inference.options.RunOptions`, so the
dock and Processing refuse and run alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingUtils, QgsProject, QgsRasterLayer

from .catalogue import resolve_model
from .core import core
from .layer_io import canvas_area, crs_text, layer_file, raster_facts, selected_polygons
from .params import (
    AREA_CANVAS,
    AREA_POLYGONS,
    DETECTOR_CFAR,
    OUTPUT_FILES,
    InferenceRequest,
    RunParameters,
)
from .validation import (
    InputRefused,
    RasterFacts,
    check_raster,
    check_resolution,
    check_scenes,
    check_task,
)


@dataclass(frozen=True)
class PlannedRun:
    """A run both front ends agree on.

    Attributes:
        model: path of the ``.onnx`` model, or ``cfar``.
        label: the model's short name for messages and layer names.
        info: the model's :class:`~sarmae_core.contract.metadata.ModelInfo`.
        options: the engine's ``RunOptions`` for ``predict``.
        cfar: ``CfarParams`` fields when ``model`` is ``cfar``.
    """

    model: str
    label: str
    info: Any
    options: Any
    cfar: dict[str, Any] | None = None

    def detector(self) -> Any:
        """What ``predict`` runs: the model path, or the engine's CA-CFAR detector."""
        return detector(self.model, self.cfar)


def detector(model: str, cfar: dict[str, Any] | None) -> Any:
    """The model path, or (``cfar`` settings given) the engine's CA-CFAR detector."""
    if cfar is None:
        return model
    inference = core("inference.model.cfar")
    return inference.CfarDetector(inference.CfarParams(**cfar))


def plan_run(
    job: str,
    scene: RasterFacts,
    model: str | None,
    bands: list[int | str] | None,
    before: RasterFacts | None,
    cfar: dict[str, Any] | None,
    settings: dict[str, Any],
) -> PlannedRun:
    """Resolve the model for ``job`` (or CA-CFAR when ``cfar`` is given), check the scene(s)
    against it by the engine's rules, and build the engine's options from ``settings``
    (``RunOptions`` fields; ``min_area_m2``/``simplify_m`` count for the mapping jobs only).

    Raises:
        InputRefused: what to choose instead, before any file is written.
    """
    if cfar is not None:  # the engine's CA-CFAR: no model file; its info says what it reads
        try:
            info = detector("cfar", cfar).info
        except core("errors").ConfigError as exc:
            raise InputRefused(str(exc)) from exc
        path, label = "cfar", "CA-CFAR"
    else:
        # flood against reference water alone: the bundled water model maps the after scene
        against = job == "flood" and before is None and settings.get("reference_water")
        resolved = resolve_model("water" if against else job, model, scene.path, bands)
        info, path, label = resolved.info, str(resolved.path), resolved.label
        check_task(info.task, job, label)
    check_scenes(info, job, scene, before, bands, label)
    check_resolution(scene, info)
    if job not in ("water", "flood"):
        settings = {k: v for k, v in settings.items() if k not in ("min_area_m2", "simplify_m")}
    try:
        options = core("inference.options").RunOptions(
            job=job,
            bands=list(bands) if bands else None,
            before=before.path if before is not None else None,
            backend="onnxruntime",  # never torch, whatever the file
            **settings,
        )
    except core("errors").ConfigError as exc:
        raise InputRefused(str(exc)) from exc
    return PlannedRun(path, label, info, options, cfar)


def build_request(
    params: RunParameters, project: QgsProject, canvas: Any = None
) -> InferenceRequest:
    """Validate ``params`` against the layer and the model; say what is wrong otherwise.

    Raises:
        InputRefused: anything that would make the run fail or mislead, before it starts.
    """
    layer = project.mapLayer(params.layer_id) if params.layer_id else None
    if not isinstance(layer, QgsRasterLayer):
        raise InputRefused("choose a SAR raster layer (Input ▸ SAR layer)")
    facts = raster_facts(layer)
    check_raster(facts)
    cfar = params.job == "ships" and params.detector == DETECTOR_CFAR
    flood_layers = _flood_layers(params, project) if params.job == "flood" else {}
    before = None
    if params.job == "flood":
        try:
            core("inference.products.change").check_flood_basis(
                params.before_layer_id or None, flood_layers.get("reference_water")
            )
        except core("errors").ConfigError as exc:  # the engine's rule, the dock's names
            raise InputRefused(
                "Map flood needs the scene before the event (Input ▸ Before) or the water of "
                "normal times (Input ▸ Reference water)"
            ) from exc
        if params.before_layer_id:
            before = _before_layer(params, project, layer)
    settings: dict[str, Any] = dict(
        tile=params.tile,
        overlap=params.overlap,
        batch_size=params.batch_size,
        threshold=params.threshold,
        units=params.units,
        overwrite=params.overwrite,
        min_area_m2=params.min_area_m2,
        simplify_m=params.simplify_m,
        **flood_layers,
    )
    if params.area == AREA_CANVAS:
        if canvas is None:
            raise InputRefused("no map canvas to take the extent from; choose another area")
        settings["aoi"], settings["aoi_crs"] = canvas_area(canvas)
    elif params.area == AREA_POLYGONS:
        area_layer = project.mapLayer(params.area_layer_id) if params.area_layer_id else None
        settings["aoi"], settings["aoi_crs"] = selected_polygons(area_layer)
    # the dock's CA-CFAR: the engine's defaults, its minimum ship area from the form
    plan = plan_run(
        params.job, facts, params.model, list(params.bands) if params.bands else None, before,
        {"min_area_m2": params.min_area_m2} if cfar else None, settings,
    )  # fmt: skip

    mask = params.job in ("water", "flood") and params.add_mask
    products = ("vector", "class") if mask else ("vector",)
    temporary = params.output != OUTPUT_FILES
    output = _temporary_output(params.job) if temporary else _file_output(params, products)
    return InferenceRequest(
        job=params.job,
        raster=facts.path,
        model=plan.model,
        model_label=plan.label,
        input_name=layer.name(),
        layer_crs=crs_text(layer.crs()),
        output=str(output),
        products=products,
        temporary=temporary,
        options=plan.options,
        cfar=plan.cfar,
    )


def _flood_layers(params: RunParameters, project: QgsProject) -> dict[str, Any]:
    """Map flood's reference water and HAND layers as the engine's options (their files)."""
    given: dict[str, Any] = {}
    for key, layer_id, what in (
        ("reference_water", params.reference_layer_id, "the reference water layer"),
        ("hand", params.hand_layer_id, "the HAND layer"),
    ):
        if not layer_id:
            continue
        layer = project.mapLayer(layer_id)
        if layer is None:
            raise InputRefused(f"{what} is no longer in the project: choose it again")
        given[key] = layer_file(layer, what)
    return given


def _before_layer(params: RunParameters, project: QgsProject, after: QgsRasterLayer) -> Any:
    """Facts of the flood run's before layer (a raster other than the after layer)."""
    layer = project.mapLayer(params.before_layer_id) if params.before_layer_id else None
    if not isinstance(layer, QgsRasterLayer):
        raise InputRefused("the before layer is no longer a raster in the project: choose the "
                           "scene before the event under Input ▸ Before")  # fmt: skip
    facts = raster_facts(layer)
    if layer.id() == after.id() or facts.path == raster_facts(after).path:
        raise InputRefused("the before and after layers are the same scene: choose the scene "
                           "before the event under Input ▸ Before")  # fmt: skip
    check_raster(facts)
    return facts


def _temporary_output(job: str) -> Path:
    """A fresh folder in QGIS's temporary folder (emptied when QGIS exits)."""
    folder = Path(QgsProcessingUtils.tempFolder()) / f"sarmae_{job}_{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder / f"{job}.gpkg"


def _file_output(params: RunParameters, products: tuple[str, ...]) -> Path:
    text = params.output_path.strip()
    if not text:
        raise InputRefused("choose the GeoPackage to write (Output ▸ File)")
    path = Path(text)
    if path.suffix.lower() != ".gpkg":
        path = path.with_suffix(".gpkg") if not path.suffix else path
    if path.suffix.lower() != ".gpkg":
        raise InputRefused(f"{path.name}: results are written to a GeoPackage (.gpkg)")
    if not path.parent.is_dir():
        raise InputRefused(f"the folder {path.parent} does not exist; create it or choose another")
    targets = [path] + ([path.with_suffix(".tif")] if "class" in products else [])
    existing = [p.name for p in targets if p.exists()]
    if existing and not params.overwrite:
        raise InputRefused(
            f"{', '.join(existing)} already exist in {path.parent}; tick Overwrite or choose "
            "another name"
        )
    return path

"""From what the dock collected to a validated, plain-data run (main thread, no pixels read)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingUtils, QgsProject, QgsRasterLayer

from .catalogue import resolve_model
from .core import core
from .layer_io import canvas_area, crs_text, raster_facts, selected_polygons
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
    check_raster,
    check_resolution,
    check_scenes,
    check_task,
)


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
    if cfar:  # the engine's CA-CFAR: no model file; its info says what it reads
        info, model_path, label = core("inference.cfar").CfarDetector().info, "cfar", "CA-CFAR"
    else:
        model = resolve_model(params.job, params.model, facts.path, params.bands)
        info, model_path, label = model.info, str(model.path), model.label
        check_task(info.task, params.job, label)
    before = _before_layer(params, project, layer) if params.job == "flood" else None
    check_scenes(info, params.job, facts, before, params.bands, label)
    check_resolution(facts, info)

    options: dict[str, Any] = dict(
        tile=params.tile,
        overlap=params.overlap,
        batch_size=params.batch_size,
        threshold=params.threshold,
        units=params.units,
        bands=list(params.bands) if params.bands else None,
        job=params.job,
        overwrite=params.overwrite,
        backend="onnxruntime",  # never torch, whatever the file
    )
    if params.job in ("water", "flood"):
        options.update(min_area_m2=params.min_area_m2, simplify_m=params.simplify_m)
    if before is not None:
        options["before"] = before.path
    cfar_settings = {"min_area_m2": params.min_area_m2} if cfar else None
    if params.area == AREA_CANVAS:
        if canvas is None:
            raise InputRefused("no map canvas to take the extent from; choose another area")
        options["aoi"], options["aoi_crs"] = canvas_area(canvas)
    elif params.area == AREA_POLYGONS:
        area_layer = project.mapLayer(params.area_layer_id) if params.area_layer_id else None
        options["aoi"], options["aoi_crs"] = selected_polygons(area_layer)

    mask = params.job in ("water", "flood") and params.add_mask
    products = ("vector", "class") if mask else ("vector",)
    temporary = params.output != OUTPUT_FILES
    output = _temporary_output(params.job) if temporary else _file_output(params, products)
    return InferenceRequest(
        job=params.job,
        raster=facts.path,
        model=model_path,
        model_label=label,
        input_name=layer.name(),
        layer_crs=crs_text(layer.crs()),
        output=str(output),
        products=products,
        temporary=temporary,
        options=options,
        cfar=cfar_settings,
    )


def _before_layer(params: RunParameters, project: QgsProject, after: QgsRasterLayer) -> Any:
    """Facts of the flood run's before layer (a raster other than the after layer)."""
    layer = project.mapLayer(params.before_layer_id) if params.before_layer_id else None
    if not isinstance(layer, QgsRasterLayer):
        raise InputRefused("Map flood needs two layers: choose the scene before the event "
                           "(Input ▸ Before)")  # fmt: skip
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

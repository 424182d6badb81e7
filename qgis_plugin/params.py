"""What the user asks for (``RunParameters``) and what a run needs (``InferenceRequest``).

The dock widget only fills ``RunParameters`` and emits it; the plugin validates it against the
layer and the model and turns it into an ``InferenceRequest``: plain data (paths, numbers,
GeoJSON), so the worker thread never touches a QGIS object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The jobs (the model task each needs is the engine's ``inference.predict.JOBS``).
JOB_TITLE = {"water": "Segment water", "ships": "Detect ships", "flood": "Map flood"}

AREA_LAYER, AREA_CANVAS, AREA_POLYGONS = "layer", "canvas", "polygons"
AREAS = (AREA_LAYER, AREA_CANVAS, AREA_POLYGONS)
OUTPUT_TEMPORARY, OUTPUT_FILES = "temporary", "files"
#: Input units the user may state; None lets sarmae read them from the file.
UNITS = ("db", "intensity", "amplitude", "complex")
#: Detect ships with the model (bundled or file) or with CA-CFAR (sarmae_core.inference.model.cfar).
DETECTOR_MODEL, DETECTOR_CFAR = "model", "cfar"


@dataclass
class RunParameters:
    """Everything the dock collects.

    Attributes:
        job: ``water``, ``ships`` or ``flood``.
        layer_id: id of the SAR raster layer (flood: the scene after the event).
        before_layer_id: flood: id of the SAR layer of the scene before the event.
        reference_layer_id: flood: id of a layer of water in normal times (raster, nonzero =
            water, or polygons): never flood; without a before layer, flood is the water
            model's water minus it.
        hand_layer_id: flood: id of a HAND raster layer (m); higher pixels are excluded.
        model: ``""`` for the bundled model of the job, else the path of an ``.onnx`` file.
        detector: Detect ships with ``model`` or with ``cfar`` (CA-CFAR, engine defaults;
            ``min_area_m2`` is then its smallest ship).
        bands: 1-based raster band for each model channel, or None to map by polarisation.
        units: units of the raster, or None to take them from the file.
        tile, overlap: tile side and overlap in pixels; None for the model's.
        batch_size: tiles per model call.
        threshold: water probability or ship confidence; None for the model's.
        min_area_m2: smallest water polygon kept (CFAR: smallest ship).
        simplify_m: polygon simplification tolerance.
        area: ``layer`` (its extent), ``canvas`` (the map view) or ``polygons``.
        area_layer_id: vector layer whose selected polygons bound the run.
        output: ``temporary`` (QGIS's temporary folder) or ``files``.
        output_path: ``.gpkg`` written in ``files`` mode (the mask goes beside it as ``.tif``).
        add_mask: also write and add the raster mask (segmentation).
        overwrite: replace existing output files.
    """

    job: str = "water"
    layer_id: str = ""
    before_layer_id: str = ""
    reference_layer_id: str = ""
    hand_layer_id: str = ""
    model: str = ""
    detector: str = DETECTOR_MODEL
    bands: tuple[int, ...] | None = None
    units: str | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    threshold: float | None = None
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    area: str = AREA_LAYER
    area_layer_id: str = ""
    output: str = OUTPUT_TEMPORARY
    output_path: str = ""
    add_mask: bool = False
    overwrite: bool = False


@dataclass
class InferenceRequest:
    """A validated run, as plain data.

    Attributes:
        job: ``water`` or ``ships``.
        raster: path GDAL opens.
        model: path of the ``.onnx`` model, or ``cfar``.
        model_label: short model name for layer names and messages.
        input_name: the input layer's name.
        layer_crs: the input layer's CRS (authid or WKT), which outputs must have.
        output: the ``.gpkg`` path (the class raster, if any, is ``<stem>.tif``).
        products: sarmae products to write (``vector``, ``class``).
        temporary: outputs live in QGIS's temporary folder.
        options: the engine's ``RunOptions`` for ``sarmae_core.inference.predict``.
        cfar: CA-CFAR settings (``CfarParams`` fields) when ``model`` is ``cfar``.
    """

    job: str
    raster: str
    model: str
    model_label: str
    input_name: str
    layer_crs: str
    output: str
    products: tuple[str, ...]
    temporary: bool
    options: Any = None
    cfar: dict[str, Any] | None = None

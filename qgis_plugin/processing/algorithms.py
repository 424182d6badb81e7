"""Segment water, Detect ships and Run SARMAE ONNX model as Processing algorithms.

Each run validates like the dock (layer, model, bands), writes into a private scratch folder and
moves the files to the requested outputs only when the run succeeded: a cancelled or failed
run leaves nothing at the output paths. Progress and cancel go through ``feedback``; errors
are ``QgsProcessingException`` with a sentence, which Processing shows in its log.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .. import deps
from ..catalogue import resolve_model
from ..compat import (
    FILE_BEHAVIOR_FILE,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_POLYGON,
)
from ..core import core
from ..layer_io import crs_text, layer_file, raster_facts
from ..naming import format_area_km2
from ..request import plan_run
from ..results import KINDS
from ..styling import style_mask
from ..validation import (
    InputRefused,
    check_raster,
)

UNIT_OPTIONS = ["from the file", "db", "intensity", "amplitude", "complex"]
DETECTOR_OPTIONS = ["SARMAE model (MODEL, empty: bundled)", "CA-CFAR (no learning)"]
#: Ship boxes of a learned model, in the engine's names (RunOptions.boxes) by option index.
BOX_OPTIONS = {"hull": "Fitted to the bright hull under each ship", "model": "The model's own"}
#: CA-CFAR settings of Detect ships: parameter, label, kind (CfarParams field in CFAR_FIELDS).
CFAR_PARAMETERS = [
    ("GUARD", "CFAR guard window, odd px", NUMBER_INTEGER),
    ("BACKGROUND", "CFAR background window, odd px", NUMBER_INTEGER),
    ("PFA", "CFAR probability of false alarm", NUMBER_DOUBLE),
    ("LOOKS", "CFAR clutter looks, 1: exponential", NUMBER_DOUBLE),
    ("MIN_SHIP_AREA", "CFAR smallest ship, m²", NUMBER_DOUBLE),
]
CFAR_FIELDS = {"GUARD": "guard", "BACKGROUND": "background", "PFA": "pfa", "LOOKS": "looks",
               "MIN_SHIP_AREA": "min_area_m2"}  # fmt: skip


class _StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Styles an output when Processing loads it into the project (GUI runs)."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def postProcessLayer(self, layer: Any, context: Any, feedback: Any) -> None:
        if isinstance(layer, QgsVectorLayer):
            KINDS[self.job][1](layer)
        elif isinstance(layer, QgsRasterLayer):
            style_mask(layer)


#: Processing keeps only a pointer to a post-processor: these must outlive every run.
_STYLERS = {job: _StyleOnLoad(job) for job in KINDS}


class _SarmaeAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters and run; subclasses fix the job (or leave it to the model)."""

    JOB: str | None = None
    ID, NAME, HELP = "", "", ""

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def name(self) -> str:
        return self.ID

    def displayName(self) -> str:
        return self.NAME

    def group(self) -> str:
        return "Deep learning on SAR"

    def groupId(self) -> str:
        return "sar"

    def shortHelpString(self) -> str:
        return self.HELP

    # ------------------------------------------------------------------ parameters
    def initAlgorithm(self, config: Any = None) -> None:
        if self.JOB == "flood":
            self.addParameter(
                QgsProcessingParameterRasterLayer("INPUT", "SAR raster after the event")
            )
            self.addParameter(
                QgsProcessingParameterRasterLayer(
                    "BEFORE", "SAR raster before the event", optional=True
                )
            )
            self.addParameter(
                QgsProcessingParameterMapLayer(
                    "REFERENCE_WATER",
                    "Reference (permanent) water: raster, nonzero = water, or polygons",
                    optional=True,
                )
            )
            self.addParameter(
                QgsProcessingParameterRasterLayer(
                    "HAND", "HAND raster (height above nearest drainage, m)", optional=True
                )
            )
            self.addParameter(
                _number("HAND_THRESHOLD", "Exclude HAND above (m)", NUMBER_DOUBLE, 15.0)
            )
            self.addParameter(
                QgsProcessingParameterRasterLayer(
                    "DEM", "DEM (m): exclude radar shadow and layover", optional=True
                )
            )
        else:
            self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "SAR raster"))
        model_help = "Model file (.onnx)" + ("" if self.JOB is None else ", empty: bundled model")
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                model_help,
                FILE_BEHAVIOR_FILE,
                "onnx",
                optional=self.JOB is not None,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "BANDS",
                "Band for each model channel (e.g. 1 or VV,VH; empty: by band name)",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("UNITS", "Values are", UNIT_OPTIONS, defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterExtent("EXTENT", "Process only this extent", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "AOI", "Process only inside these polygons", [SOURCE_POLYGON], optional=True
            )
        )
        self.addParameter(_number("TILE", "Tile size (px; empty: the model's)", NUMBER_INTEGER))
        self.addParameter(
            _number("OVERLAP", "Tile overlap (px; empty: the model's)", NUMBER_INTEGER)
        )
        self.addParameter(_number("BATCH_SIZE", "Batch size", NUMBER_INTEGER, 4, minimum=1))
        self.addParameter(
            _number("THRESHOLD", "Threshold (empty: the model's)", NUMBER_DOUBLE, maximum=1.0)
        )
        if self.JOB == "ships":  # CA-CFAR: the engine's detector and its documented settings
            self.addParameter(
                QgsProcessingParameterEnum("DETECTOR", "Detector", DETECTOR_OPTIONS, defaultValue=0)
            )
            # Empty: the engine's default (CfarParams), so no default is written twice and the
            # engine is not imported when QGIS loads the provider.
            for key, label, kind in CFAR_PARAMETERS:
                self.addParameter(_number(key, f"{label} (empty: default)", kind))
            self.addParameter(
                QgsProcessingParameterEnum(
                    "BOXES", "Ship boxes (SARMAE model)", list(BOX_OPTIONS.values()), defaultValue=0
                )
            )
        if self.JOB != "ships":
            self.addParameter(_number("MIN_AREA", "Minimum polygon area (m²)", NUMBER_DOUBLE, 0.0))
            self.addParameter(
                _number("SIMPLIFY", "Simplification tolerance (m)", NUMBER_DOUBLE, 0.0)
            )
        kind = {"water": "Water polygons", "ships": "Ship boxes", "flood": "Flood polygons"}.get(
            self.JOB or "", "Results"
        )
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", kind))
        if self.JOB != "ships":
            self.addParameter(
                QgsProcessingParameterRasterDestination(
                    "OUTPUT_RASTER",
                    "Class raster (segmentation)",
                    optional=True,
                    createByDefault=False,
                )
            )
        if self.JOB == "flood":
            for key, label in FLOOD_RASTERS.items():
                self.addParameter(
                    QgsProcessingParameterRasterDestination(
                        key, label, optional=True, createByDefault=False
                    )
                )
            self.addOutput(QgsProcessingOutputNumber("FLOOD_AREA_KM2", "New flood area (km²)"))
            self.addOutput(
                QgsProcessingOutputNumber("REFERENCE_WATER_KM2", "Reference water (km²)")
            )
            self.addOutput(QgsProcessingOutputNumber("EXCLUDED_KM2", "Excluded area (km²)"))
        elif self.JOB != "ships":
            self.addOutput(QgsProcessingOutputNumber("WATER_AREA_KM2", "Water area (km²)"))
        if self.JOB not in ("water", "flood"):
            self.addOutput(QgsProcessingOutputNumber("SHIP_COUNT", "Number of ships"))

    # ------------------------------------------------------------------ run
    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        missing = deps.missing_modules()
        if missing:
            raise QgsProcessingException(deps.missing_message(missing))
        try:
            return self._run(parameters, context, feedback)
        except InputRefused as exc:
            raise QgsProcessingException(str(exc)) from exc

    def _run(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise InputRefused("INPUT is not a raster layer GDAL can open")
        facts = raster_facts(layer)
        check_raster(facts)
        model_path = self.parameterAsFile(parameters, "MODEL", context)
        job = self.JOB
        if job is None:
            info = resolve_model("water", model_path).info  # only reads the file's metadata
            job = core("inference.predict").job_for(info)
            if job == "flood":
                raise InputRefused(
                    f"{model_path} maps flood between two dates: run it with Map flood "
                    "(sarmae:mapflood), which takes the scene before the event (BEFORE)"
                )
            if job is None:
                raise InputRefused(
                    f"{model_path} is a {info.task} model; SARMAE maps pixels "
                    "(segmentation) or objects (detection)"
                )
        bands = _bands(self.parameterAsString(parameters, "BANDS", context))
        cfar = None
        if job == "ships" and self.parameterAsEnum(parameters, "DETECTOR", context) == 1:
            cfar = self._cfar(parameters, context)
        before = None
        layers: dict[str, Any] = {}
        if job == "flood":
            if parameters.get("BEFORE") not in (None, ""):
                before_layer = self.parameterAsRasterLayer(parameters, "BEFORE", context)
                if before_layer is None:
                    raise InputRefused("BEFORE is not a raster layer GDAL can open")
                before = raster_facts(before_layer)
                check_raster(before)
            layers = self._flood_layers(parameters, context)
            try:
                core("inference.products.change").check_flood_basis(
                    before, layers.get("reference_water")
                )
            except core("errors").ConfigError as exc:  # the engine's rule, Processing's names
                raise InputRefused(
                    "Map flood needs what was there before the event: BEFORE (the scene "
                    "before) or REFERENCE_WATER (water of normal times)"
                ) from exc
        settings: dict[str, Any] = dict(
            overwrite=True,
            units=[None, *UNIT_OPTIONS[1:]][self.parameterAsEnum(parameters, "UNITS", context)],
            tile=_optional_int(self, parameters, "TILE", context),
            overlap=_optional_int(self, parameters, "OVERLAP", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            threshold=_optional_double(self, parameters, "THRESHOLD", context),
        )
        if self.JOB == "ships":
            box_mode = self.parameterAsEnum(parameters, "BOXES", context)
            settings["boxes"] = list(BOX_OPTIONS)[box_mode]
        if job in ("water", "flood"):
            settings["min_area_m2"] = self.parameterAsDouble(parameters, "MIN_AREA", context)
            settings["simplify_m"] = self.parameterAsDouble(parameters, "SIMPLIFY", context)
        settings.update(self._area(parameters, context, layer))
        settings.update(layers)
        plan = plan_run(job, facts, model_path, bands, before, cfar, settings)

        vector_out = Path(self.parameterAsOutputLayer(parameters, "OUTPUT", context))
        if vector_out.suffix.lower() != ".gpkg":
            raise InputRefused(f"OUTPUT must be a GeoPackage (.gpkg), not {vector_out.name}")
        raster_out = None
        if job in ("water", "flood") and parameters.get("OUTPUT_RASTER") not in (None, ""):
            raster_out = Path(self.parameterAsOutputLayer(parameters, "OUTPUT_RASTER", context))
        products = ("vector", "class") if raster_out else ("vector",)
        extra = {}  # flood rasters asked for: product -> destination
        if job == "flood":
            for key in FLOOD_RASTERS:
                if parameters.get(key) not in (None, ""):
                    product = key.removeprefix("OUTPUT_").lower()
                    extra[product] = Path(self.parameterAsOutputLayer(parameters, key, context))
            products += tuple(extra)

        scratch = Path(QgsProcessingUtils.tempFolder()) / f"sarmae_{uuid.uuid4().hex[:8]}"
        scratch.mkdir(parents=True)
        errors = core("errors")
        try:
            result = core("inference.predict").predict(
                facts.path,
                plan.detector(),
                scratch / "out.gpkg",
                plan.options,
                products=products,
                progress=feedback.setProgress,
                cancel=feedback.isCanceled,
            )
            _move(result.files["vector"], vector_out)
            if raster_out is not None:
                _move(result.files["class"], raster_out)
            for product, path in extra.items():
                _move(result.files[product], path)
        except errors.CancelledError as exc:
            raise QgsProcessingException("cancelled; nothing was written") from exc
        except errors.SarmaeError as exc:
            raise QgsProcessingException(str(exc)) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        for note in result.notes:
            feedback.pushInfo(f"note: {note}")
        s = result.summary
        outputs: dict[str, Any] = {"OUTPUT": str(vector_out)}
        if job in ("water", "flood"):
            mapped = s.water_area_km2 if job == "water" else s.class_area_km2.get("flood")
            area = s.vector_area_km2 if s.vector_area_km2 is not None else mapped
            outputs["WATER_AREA_KM2" if job == "water" else "FLOOD_AREA_KM2"] = area
            outputs["OUTPUT_RASTER"] = str(raster_out) if raster_out else None
            feedback.pushInfo(f"{job}: {format_area_km2(area)}")
            if job == "flood":
                outputs["REFERENCE_WATER_KM2"] = s.reference_water_km2
                outputs["EXCLUDED_KM2"] = s.excluded_km2
                for key in FLOOD_RASTERS:
                    product = key.removeprefix("OUTPUT_").lower()
                    outputs[key] = str(extra[product]) if product in extra else None
                feedback.pushInfo(
                    f"reference water: {format_area_km2(s.reference_water_km2)}, excluded: "
                    f"{format_area_km2(s.excluded_km2)}"
                )
        else:
            outputs["SHIP_COUNT"] = s.ship_count
            feedback.pushInfo(f"ships: {s.ship_count}")
        self._style_on_load(context, job, [str(vector_out), str(raster_out or "")])
        return outputs

    def _flood_layers(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> dict[str, Any]:
        """Reference water and HAND given to Map flood, as the engine's options (file paths:
        the engine reads them on the after scene's grid)."""
        given: dict[str, Any] = {
            "hand_threshold_m": self.parameterAsDouble(parameters, "HAND_THRESHOLD", context)
        }
        if parameters.get("REFERENCE_WATER") not in (None, ""):
            ref = self.parameterAsLayer(parameters, "REFERENCE_WATER", context)
            if ref is None:
                raise InputRefused("REFERENCE_WATER is not a layer QGIS can open")
            given["reference_water"] = layer_file(ref, "REFERENCE_WATER")
        for key, option in (("HAND", "hand"), ("DEM", "dem")):
            if parameters.get(key) not in (None, ""):
                raster = self.parameterAsRasterLayer(parameters, key, context)
                if raster is None:
                    raise InputRefused(f"{key} is not a raster layer GDAL can open")
                given[option] = layer_file(raster, key)
        return given

    def _cfar(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """The CA-CFAR settings given (``CfarParams`` fields; the engine's defaults for the
        rest), checked by the engine when the run is planned."""
        given: dict[str, Any] = {}
        for key, _label, kind in CFAR_PARAMETERS:
            read = _optional_int if kind == NUMBER_INTEGER else _optional_double
            value = read(self, parameters, key, context)
            if value is not None:
                given[CFAR_FIELDS[key]] = value
        return given

    def _area(
        self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer
    ) -> dict[str, Any]:
        source = self.parameterAsSource(parameters, "AOI", context)
        has_extent = parameters.get("EXTENT") not in (None, "")
        if source is not None and has_extent:
            raise InputRefused("give either EXTENT or AOI polygons, not both")
        if source is not None:
            features = [
                {"type": "Feature", "properties": {}, "geometry": json.loads(f.geometry().asJson())}
                for f in source.getFeatures()
                if f.hasGeometry()
            ]
            if not features:
                raise InputRefused("the AOI layer has no polygons")
            return {
                "aoi": {"type": "FeatureCollection", "features": features},
                "aoi_crs": crs_text(source.sourceCrs()),
            }
        if has_extent:
            ext = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
            box = (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum())
            return {"aoi": box, "aoi_crs": crs_text(layer.crs())}
        return {}

    @staticmethod
    def _style_on_load(context: QgsProcessingContext, job: str, paths: list[str]) -> None:
        for path in paths:
            if path and context.willLoadLayerOnCompletion(path):
                context.layerToLoadOnCompletionDetails(path).setPostProcessor(_STYLERS[job])


class SegmentWater(_SarmaeAlgorithm):
    JOB, ID, NAME = "water", "segmentwater", "Segment water"
    HELP = (
        "Maps open water on a SAR raster (e.g. Sentinel-1 VV in dB) with a SARMAE "
        "segmentation model (the bundled Water model unless MODEL is given), tile by tile "
        "in bounded memory. Writes water polygons to a GeoPackage and, optionally, the "
        "class raster; reports the water area in km²."
    )


class DetectShips(_SarmaeAlgorithm):
    JOB, ID, NAME = "ships", "detectships", "Detect ships"
    HELP = (
        "Detects ships on a SAR raster with a SARMAE detection model (the bundled Ships "
        "model unless MODEL is given), or with cell-averaging CFAR (Detector: CA-CFAR; guard "
        "and background windows in pixels, probability of false alarm under an exponential "
        "or gamma clutter model, smallest ship; mask land with AOI polygons of the sea). "
        "Writes one box per ship with its score, length and width to a GeoPackage, merging "
        "what tiles saw of the same ship."
    )


class MapFlood(_SarmaeAlgorithm):
    JOB, ID, NAME = "flood", "mapflood", "Map flood"
    HELP = (
        "Maps new flood between two SAR scenes (e.g. Sentinel-1 VV in dB): water on the "
        "scene after the event (INPUT) that was not water on the scene before it (BEFORE, on "
        "any grid or CRS that overlaps INPUT; it is read on INPUT's grid), with a SARMAE "
        "two-date model (the bundled Flood model unless MODEL is given). Or, without BEFORE, "
        "the bundled Water model's water on INPUT minus REFERENCE_WATER. Reference water is "
        "never flood; pixels with HAND above the threshold (15 m, as HydroSAR) are excluded. "
        "Writes flood polygons to a GeoPackage and, optionally, the class raster (1 flood, "
        "2 reference water, 3 excluded), the likelihood (0-100 %) and the exclusion mask; "
        "reports the flood, reference water and excluded areas in km²."
    )


class RunModel(_SarmaeAlgorithm):
    JOB, ID, NAME = None, "runmodel", "Run SARMAE ONNX model"
    HELP = (
        "Runs any segmentation or detection model exported with `sarmae export` (its "
        "bands, units, tile and thresholds come from the file) on a SAR raster."
    )


#: Map flood's optional raster outputs (engine products ``likelihood`` and ``exclusion``).
FLOOD_RASTERS = {
    "OUTPUT_LIKELIHOOD": "Flood likelihood raster (0-100 %)",
    "OUTPUT_EXCLUSION": "Exclusion mask (1 HAND, 2 no data, 3 radar shadow or layover)",
    "OUTPUT_WATER": "Water observed on the after date",
}


def _number(
    name: str,
    label: str,
    kind: Any,
    default: Any = None,
    minimum: float = 0,
    maximum: float | None = None,
) -> QgsProcessingParameterNumber:
    param = QgsProcessingParameterNumber(
        name, label, kind, default, optional=default is None, minValue=minimum
    )
    if maximum is not None:
        param.setMaximum(maximum)
    return param


def _optional_int(
    alg: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> int | None:
    if parameters.get(name) in (None, ""):
        return None
    return alg.parameterAsInt(parameters, name, context)


def _optional_double(
    alg: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> float | None:
    if parameters.get(name) in (None, ""):
        return None
    return alg.parameterAsDouble(parameters, name, context)


def _bands(text: str) -> list[int | str] | None:
    """``"1"`` -> [1]; ``"VV,VH"`` -> ["VV", "VH"]; empty -> None (map by band name)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return [int(t) if t.isdigit() else t for t in items] or None


def _move(src: Path, dst: Path) -> None:
    """Replace ``dst`` by ``src`` (Processing overwrites the outputs it is given)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    shutil.move(str(src), str(dst))

"""The SARMAE Processing provider: typed parameters, feedback progress and cancel, the Model
Designer, refusals as Processing errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsVectorLayer,
)

from tests.conftest import S1_VV_DB

pytestmark = pytest.mark.qgis


@pytest.fixture
def provider(qgis_processing: None) -> Any:
    """The provider as ``qgis_process`` gets it: ``classFactory(None).initProcessing()``."""
    from qgis_plugin import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    plugin.unload()


def run(alg_id: str, params: dict[str, Any], feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(alg_id, params, feedback=feedback or QgsProcessingFeedback())


def test_provider_lists_four_algorithms_for_batch_and_cancel(provider):
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("sarmae") is provider
    ids = sorted(a.id() for a in provider.algorithms())
    assert ids == ["sarmae:detectships", "sarmae:mapflood", "sarmae:runmodel",
                   "sarmae:segmentwater"]  # fmt: skip
    alg = registry.algorithmById("sarmae:segmentwater")
    assert alg.flags() & QgsProcessingAlgorithm.Flag.FlagSupportsBatch
    assert alg.flags() & QgsProcessingAlgorithm.Flag.FlagCanCancel
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names[:2] == ["INPUT", "MODEL"] and "OUTPUT" in names and "OUTPUT_RASTER" in names
    assert alg.parameterDefinition("MODEL").flags() & alg.parameterDefinition("MODEL").FlagOptional


def test_segment_water_writes_polygons_and_class_raster(provider, models, tmp_path):
    out = run(
        "sarmae:segmentwater",
        {
            "INPUT": str(S1_VV_DB),
            "MODEL": str(models["water"]),
            "MIN_AREA": 2000,
            "SIMPLIFY": 10,
            "OUTPUT": str(tmp_path / "w.gpkg"),
            "OUTPUT_RASTER": str(tmp_path / "c.tif"),
        },
    )
    layer = QgsVectorLayer(out["OUTPUT"], "w", "ogr")
    assert layer.isValid() and layer.featureCount() > 5
    assert layer.crs().authid() == "EPSG:32631"
    assert 2.0 < out["WATER_AREA_KM2"] < 7.0
    assert Path(out["OUTPUT_RASTER"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "w.gpkg"]


def test_detect_ships_and_run_model(provider, models, exported_model, tmp_path):
    ships = run(
        "sarmae:detectships",
        {
            "INPUT": str(S1_VV_DB),
            "MODEL": str(models["ships"]),
            "OUTPUT": str(tmp_path / "s.gpkg"),
        },
    )
    assert ships["SHIP_COUNT"] > 0
    assert QgsVectorLayer(ships["OUTPUT"], "s", "ogr").featureCount() == ships["SHIP_COUNT"]
    # Any sarmae ONNX model: the task comes from its metadata (here the exported ViT).
    any_model = run(
        "sarmae:runmodel",
        {
            "INPUT": str(S1_VV_DB),
            "MODEL": str(exported_model),
            "OUTPUT": str(tmp_path / "m.gpkg"),
        },
    )
    assert any_model["WATER_AREA_KM2"] is not None
    assert QgsVectorLayer(any_model["OUTPUT"], "m", "ogr").isValid()


def test_extent_limits_the_run(provider, models, tmp_path):
    x0, y1 = 620048.241204, 4830114.70107
    extent = f"{x0},{x0 + 2000},{y1 - 2000},{y1} [EPSG:32631]"
    out = run(
        "sarmae:segmentwater",
        {
            "INPUT": str(S1_VV_DB),
            "MODEL": str(models["water"]),
            "EXTENT": extent,
            "OUTPUT": str(tmp_path / "w.gpkg"),
        },
    )
    layer = QgsVectorLayer(out["OUTPUT"], "w", "ogr")
    assert layer.extent().xMaximum() <= x0 + 2000 + 20
    assert out["WATER_AREA_KM2"] <= 4.0


def test_cancel_through_feedback_leaves_nothing(provider, models, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p >= 20 else None)
    with pytest.raises(QgsProcessingException, match="cancelled; nothing was written"):
        run(
            "sarmae:segmentwater",
            {
                "INPUT": str(S1_VV_DB),
                "MODEL": str(models["water"]),
                "BATCH_SIZE": 1,
                "OUTPUT": str(tmp_path / "w.gpkg"),
                "OUTPUT_RASTER": str(tmp_path / "c.tif"),
            },
            feedback,
        )
    assert list(tmp_path.iterdir()) == []


def test_refusals_are_processing_errors(provider, models, rgb_tif, nocrs_tif, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for path, expected in ((rgb_tif, "optical RGB"), (nocrs_tif, "no coordinate reference")):
        with pytest.raises(QgsProcessingException, match=expected):
            run(
                "sarmae:segmentwater",
                {
                    "INPUT": str(path),
                    "MODEL": str(models["water"]),
                    "OUTPUT": str(tmp_path / "w.gpkg"),
                },
            )
    with pytest.raises(QgsProcessingException, match="needs a detection model"):
        run(
            "sarmae:detectships",
            {
                "INPUT": str(S1_VV_DB),
                "MODEL": str(models["water"]),
                "OUTPUT": str(tmp_path / "s.gpkg"),
            },
        )
    assert list(tmp_path.iterdir()) == []


def test_segment_water_in_a_model_designer_model(provider, models, tmp_path):
    """A graphical model (as the Model Designer saves it) with Segment water as a step."""
    model = QgsProcessingModelAlgorithm("water map", "sar")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("scene", "SAR scene"),
        QgsProcessingModelParameter("scene"),
    )
    child = QgsProcessingModelChildAlgorithm("sarmae:segmentwater")
    child.setChildId("water")
    child.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("scene")]
    )
    child.addParameterSources(
        "MODEL", [QgsProcessingModelChildParameterSource.fromStaticValue(str(models["water"]))]
    )
    child.addParameterSources(
        "MIN_AREA", [QgsProcessingModelChildParameterSource.fromStaticValue(5000)]
    )
    output = QgsProcessingModelOutput("water_polygons")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"water_polygons": output})
    model.addChildAlgorithm(child)
    saved = tmp_path / "water.model3"
    assert model.toFile(str(saved))

    reloaded = QgsProcessingModelAlgorithm()
    assert reloaded.fromFile(str(saved))
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    params = {"scene": str(S1_VV_DB), "water:water_polygons": str(tmp_path / "model_out.gpkg")}
    results, ok = reloaded.run(params, context, feedback)
    assert ok and results["water:water_polygons"] == str(tmp_path / "model_out.gpkg")
    layer = QgsVectorLayer(str(tmp_path / "model_out.gpkg"), "m", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    assert all(f["area_m2"] >= 5000 for f in layer.getFeatures())

"""Detect ships in QGIS with CA-CFAR (dock and Processing), and the pixel-size refusal of a ship
model made for 0.5-3 m pixels, on real HRSID tiles and the real Sentinel-1 scene (issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from qgis_plugin.dock import SarmaeDock
from qgis_plugin.params import DETECTOR_CFAR, RunParameters
from qgis_plugin.request import build_request
from qgis_plugin.validation import InputRefused
from tests.conftest import S1_VV_DB
from tests.inference.helpers import det_info, make_det_onnx
from tests.inference.test_cfar import HRSID, OFFSHORE, OFFSHORE_SHIPS, covers, hrsid_geotiff
from tests.qgis.conftest import add_layer

pytestmark = [
    pytest.mark.qgis,
    pytest.mark.skipif(not HRSID.is_dir(), reason="HRSID mini not in ../shared/data"),
]


@pytest.fixture
def offshore(tmp_path: Path) -> Path:
    """The held-out offshore HRSID tile as amplitude, 1 m pixels in UTM 51N."""
    return hrsid_geotiff(OFFSHORE, tmp_path)


@pytest.fixture
def hr_ships(tmp_path: Path) -> Path:
    """A ships model that declares 0.5-3 m pixels, as the bundled one does."""
    info = det_info(resolution_m=None, resolution_range_m=[0.5, 3.0], name="ships-hr")
    return make_det_onnx(tmp_path / "ships_hr.onnx", info)


def pixel_boxes(layer: QgsVectorLayer) -> list[tuple[float, ...]]:
    """Box envelopes back in the tile's pixels (origin 350000, 3460000; 1 m pixels)."""
    out = []
    for f in layer.getFeatures():
        b = f.geometry().boundingBox()
        out.append((b.xMinimum() - 350_000, 3_460_000 - b.yMaximum(),
                    b.xMaximum() - 350_000, 3_460_000 - b.yMinimum()))  # fmt: skip
    return out


def test_dock_offers_cfar_for_detect_ships_without_a_ships_model(project, no_bundled):
    dock = SarmaeDock(project)
    emitted: list[RunParameters] = []
    dock.run_requested.connect(emitted.append)
    assert not dock.ships_button.isEnabled()  # no model installed
    dock.detector_combo.setCurrentIndex(dock.detector_combo.findData(DETECTOR_CFAR))
    assert dock.ships_button.isEnabled() and not dock.water_button.isEnabled()
    dock.min_area_spin.setValue(200)
    dock.ships_button.click()
    (p,) = emitted
    assert (p.job, p.detector, p.min_area_m2) == ("ships", DETECTOR_CFAR, 200)
    restored = SarmaeDock(project)
    restored.set_parameters(p)
    assert restored.parameters("ships").detector == DETECTOR_CFAR


def test_plugin_runs_cfar_through_the_engine(plugin, project, offshore, no_bundled):
    layer = add_layer(project, offshore, "HRSID P0007 amplitude")
    params = RunParameters(job="ships", layer_id=layer.id(), detector=DETECTOR_CFAR,
                           units="amplitude", min_area_m2=200.0)  # fmt: skip
    request = build_request(params, project)
    assert request.model == "cfar" and request.cfar == {"min_area_m2": 200.0}
    plugin.start(params, background=False)
    outcome = plugin.last_outcome
    assert outcome.ok, outcome.error
    assert outcome.result.backend == "cfar"
    ships = QgsVectorLayer(str(outcome.result.files["vector"]), "ships", "ogr")
    boxes = pixel_boxes(ships)
    assert ships.featureCount() == outcome.result.summary.ship_count >= 2
    for ship in OFFSHORE_SHIPS:
        assert sum(covers(b, ship) for b in boxes) == 1


def test_dock_refuses_a_high_resolution_ship_model_on_sentinel1(project, s1_layer, hr_ships):
    params = RunParameters(job="ships", layer_id=s1_layer.id(), model=str(hr_ships))
    with pytest.raises(InputRefused) as err:
        build_request(params, project)
    text = str(err.value)
    assert text.startswith("'S1A VV dB 2015-03-09': this model is for 0.5-3 m pixels")
    assert "20 x 20 m pixels" in text and "CA-CFAR" in text
    # CFAR is for any pixel size
    cfar = RunParameters(job="ships", layer_id=s1_layer.id(), detector=DETECTOR_CFAR)
    assert build_request(cfar, project).model == "cfar"


def run(alg_id: str, params: dict[str, Any]) -> dict:
    import processing

    return processing.run(alg_id, params, feedback=QgsProcessingFeedback())


def test_processing_detect_ships_with_cfar(qgis_processing, offshore, hr_ships, tmp_path):
    from qgis_plugin import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    try:
        out = run("sarmae:detectships", {
            "INPUT": str(offshore), "DETECTOR": 1, "UNITS": 3, "MIN_SHIP_AREA": 200.0,
            "OUTPUT": str(tmp_path / "cfar.gpkg"),
        })  # fmt: skip
        layer = QgsVectorLayer(out["OUTPUT"], "cfar", "ogr")
        assert layer.featureCount() == out["SHIP_COUNT"] >= 2
        assert all(sum(covers(b, s) for b in pixel_boxes(layer)) == 1 for s in OFFSHORE_SHIPS)
        # the tracebacks pytest.raises keeps below hold this frame: a layer left in it would be
        # freed after QGIS has exited, and the interpreter would crash at exit
        del layer
        with pytest.raises(QgsProcessingException, match="odd number"):
            run("sarmae:detectships", {"INPUT": str(offshore), "DETECTOR": 1, "GUARD": 14,
                                       "OUTPUT": str(tmp_path / "bad.gpkg")})  # fmt: skip
        assert not (tmp_path / "bad.gpkg").exists()
        with pytest.raises(QgsProcessingException, match=r"this model is for 0\.5-3 m pixels"):
            run("sarmae:detectships", {"INPUT": str(S1_VV_DB), "MODEL": str(hr_ships),
                                       "OUTPUT": str(tmp_path / "s1.gpkg")})  # fmt: skip
    finally:
        plugin.unload()


def test_processing_detect_ships_fits_boxes_to_hulls(qgis_processing, tmp_path):
    """Detect ships with the bundled model on the offshore tile (written as the ships recipe
    writes it): the 85 px hull's box covers the hull by default (BOXES 0, the engine's
    ``boxes="hull"``), and falls short of it with the model's own box (BOXES 1)."""
    from qgis_plugin import classFactory
    from sarmae_train.heldout_ships import write_tile
    from tests.inference.test_hull_boxes import offshore_amplitude

    tif = write_tile(tmp_path / f"{OFFSHORE}.tif", offshore_amplitude(), 1.0)
    plugin = classFactory(None)
    plugin.initProcessing()
    try:
        covered = {}
        for mode in (0, 1):
            out = run("sarmae:detectships", {
                "INPUT": str(tif), "UNITS": 3, "BOXES": mode,
                "OUTPUT": str(tmp_path / f"ships{mode}.gpkg"),
            })  # fmt: skip
            layer = QgsVectorLayer(out["OUTPUT"], "ships", "ogr")
            assert layer.featureCount() == out["SHIP_COUNT"] == 2
            covered[mode] = [any(covers(b, s) for b in pixel_boxes(layer)) for s in OFFSHORE_SHIPS]
            del layer  # freed before QGIS exits
        assert covered[0] == [True, True] and covered[1][0] is False
    finally:
        plugin.unload()

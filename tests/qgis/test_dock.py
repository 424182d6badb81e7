"""The dock: fills itself from the layer and the model, emits parameters, remembers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QSettings

from qgis_plugin import settings
from qgis_plugin.dock import MODEL_FILE, SarmaeDock
from qgis_plugin.params import AREA_CANVAS, OUTPUT_FILES, RunParameters
from tests.conftest import S1_VV_DB
from tests.qgis.conftest import add_layer

pytestmark = pytest.mark.qgis


def select_model_file(dock: SarmaeDock, path: Path) -> None:
    dock.model_combo.setCurrentIndex(dock.model_combo.findData(MODEL_FILE))
    dock.model_file.setFilePath(str(path))


@pytest.fixture
def vh_vv_tif(tmp_path: Path) -> Path:
    """A dual-pol raster whose bands say what they are, in the 'wrong' order (VH, VV)."""
    import rasterio

    with rasterio.open(S1_VV_DB) as src:
        vv, profile = src.read(1), src.profile
    with rasterio.open(tmp_path / "dual.tif", "w", **(profile | {"count": 2})) as dst:
        dst.write(np.stack([vv - 7.0, vv]).astype(np.float32))
        dst.descriptions = ("Sigma0_VH_db", "Sigma0_VV_db")
    return tmp_path / "dual.tif"


def test_band_mapping_is_filled_from_band_descriptions(project, vh_vv_tif, models, no_bundled):
    layer = add_layer(project, vh_vv_tif, "dual-pol")
    dock = SarmaeDock(project)
    select_model_file(dock, models["water"])
    dock.layer_combo.setLayer(layer)
    (combo,) = dock._band_boxes
    assert dock.band_form.labelForField(combo).text() == "VV ←"
    assert combo.currentText() == "2: Sigma0_VV_db" and combo.currentData() == 2
    assert dock.parameters().bands == (2,)
    assert dock.layer_info.text() == "2 bands · Float32 · EPSG:32631 · 20 m pixels"


@pytest.fixture
def tags_disagree_tif(tmp_path: Path) -> Path:
    """A dual-pol raster whose POLARISATION tags (VV, VH) contradict its band descriptions
    (Sigma0_VH_db, Sigma0_VV_db): the tags are right, band 2 is VH (the real VV minus 7 dB)."""
    import rasterio

    with rasterio.open(S1_VV_DB) as src:
        vv, profile = src.read(1), src.profile
    path = tmp_path / "tagged.tif"
    with rasterio.open(path, "w", **(profile | {"count": 2})) as dst:
        dst.write(np.stack([vv, vv - 7.0]).astype(np.float32))
        dst.descriptions = ("Sigma0_VH_db", "Sigma0_VV_db")
        dst.update_tags(1, POLARISATION="VV")
        dst.update_tags(2, POLARISATION="VH")
    return path


def test_dock_maps_bands_as_predict_does_when_tags_and_descriptions_disagree(
    project, tags_disagree_tif, models, no_bundled, tmp_path
):
    import rasterio

    import sarmae_core
    from sarmae_core.inference.model.backends import load_backend
    from sarmae_core.inference.scene.source import SarSource

    layer = add_layer(project, tags_disagree_tif, "tagged")
    dock = SarmaeDock(project)
    select_model_file(dock, models["water"])
    dock.layer_combo.setLayer(layer)
    (combo,) = dock._band_boxes
    # the engine's mapping, as predict makes it: the tags win over the descriptions
    info = load_backend(str(models["water"])).info
    with SarSource(tags_disagree_tif, info) as source:
        assert [ch.bands for ch in source.channels] == [(1,)]
    assert combo.currentData() == 1 and dock.parameters().bands == (1,)

    def water(bands: Any, name: str) -> np.ndarray:
        res = sarmae_core.predict(
            tags_disagree_tif, models["water"], tmp_path / f"{name}.tif", products=("class",),
            bands=bands,
        )  # fmt: skip
        with rasterio.open(res.files["class"]) as src:
            return src.read(1)

    # predict left to map the bands reads what the dock suggests, not the other band
    mapped = water(None, "mapped")
    assert np.array_equal(mapped, water(list(dock.parameters().bands), "dock"))
    assert not np.array_equal(mapped, water([2], "described"))


def test_model_file_fills_the_form_and_picks_the_button(project, s1_layer, models, no_bundled):
    dock = SarmaeDock(project)
    assert not dock.water_button.isEnabled() and not dock.ships_button.isEnabled()
    assert "no bundled models" in dock.model_info.text()

    select_model_file(dock, models["water64"])
    assert (dock.tile_spin.value(), dock.overlap_spin.value()) == (64, 16)
    assert dock.threshold_spin.value() == pytest.approx(0.5)
    assert dock.model_info.text() == "segmentation (water) · VV in db, 20 m pixels · tile 64 px"
    assert dock.water_button.isEnabled() and not dock.ships_button.isEnabled()

    select_model_file(dock, models["ships"])
    assert dock.threshold_spin.value() == pytest.approx(0.5)  # the detector's confidence
    assert dock.ships_button.isEnabled() and not dock.water_button.isEnabled()

    broken = models["water"].parent / "broken.onnx"
    broken.write_bytes(b"not a model")
    select_model_file(dock, broken)
    assert "is not a readable ONNX model" in dock.model_info.text()
    assert not dock.water_button.isEnabled() and not dock.ships_button.isEnabled()


def test_bundled_models_listed_with_model_defaults(project, s1_layer, bundled):
    dock = SarmaeDock(project)
    assert dock.model_info.text() == (
        "Water: installed (VV, VV+VH) · Ships: installed · Flood: installed"
    )
    assert dock.water_button.isEnabled() and dock.ships_button.isEnabled()
    assert dock.flood_button.isEnabled()  # the bundled Flood model: Map flood by default
    assert dock.tile_spin.text() == "model's" and dock.threshold_spin.text() == "model's"
    p = dock.parameters("ships")
    assert (p.model, p.tile, p.overlap, p.threshold) == ("", None, None, None)


def test_buttons_emit_parameters(project, s1_layer, bundled, tmp_path):
    dock = SarmaeDock(project)
    emitted: list[RunParameters] = []
    dock.run_requested.connect(emitted.append)
    dock.layer_combo.setLayer(s1_layer)
    dock.batch_spin.setValue(8)
    dock.min_area_spin.setValue(5000)
    dock.area_combo.setCurrentIndex(dock.area_combo.findData(AREA_CANVAS))
    dock.output_combo.setCurrentIndex(dock.output_combo.findData(OUTPUT_FILES))
    dock.output_file.setFilePath(str(tmp_path / "out.gpkg"))
    dock.water_button.click()
    dock.ships_button.click()
    water, ships = emitted
    assert (water.job, ships.job) == ("water", "ships")
    assert water.layer_id == s1_layer.id() and water.bands == (1,)  # VV from the file name
    assert (water.batch_size, water.min_area_m2, water.area) == (8, 5000, AREA_CANVAS)
    assert (water.output, water.output_path) == (OUTPUT_FILES, str(tmp_path / "out.gpkg"))


def test_settings_survive_a_restart(qgis_iface: Any, project, s1_layer, models, no_bundled):
    from qgis_plugin import classFactory

    first = classFactory(qgis_iface)
    first.initGui()
    dock = first.dock
    dock.layer_combo.setLayer(s1_layer)
    select_model_file(dock, models["water64"])
    dock.batch_spin.setValue(16)
    dock.simplify_spin.setValue(12.5)
    dock.mask_check.setChecked(True)
    dock.output_combo.setCurrentIndex(dock.output_combo.findData(OUTPUT_FILES))
    dock.output_file.setFilePath("/data/out/water.gpkg")
    before = dock.parameters()
    first.unload()  # QGIS closing

    # What QGIS reads at the next start: the profile's settings file on disk.
    on_disk = QSettings(QgsSettings().fileName(), QSettings.Format.IniFormat).value(settings.KEY)
    assert on_disk and "water64.onnx" in on_disk

    second = classFactory(qgis_iface)
    second.initGui()
    try:
        after = second.dock.parameters()
        assert after == before
        assert second.dock.model_info.text().startswith("segmentation (water)")
    finally:
        second.unload()


def test_progress_and_cancel_state(project, bundled):
    dock = SarmaeDock(project)
    cancels: list[bool] = []
    dock.cancel_requested.connect(lambda: cancels.append(True))
    assert not dock.cancel_button.isEnabled()
    dock.set_running(True)
    assert dock.cancel_button.isEnabled() and not dock.water_button.isEnabled()
    dock.set_progress(42.7)
    assert dock.progress.value() == 42
    dock.cancel_button.click()
    assert cancels == [True]
    dock.set_running(False)
    assert dock.water_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_bundled_water_on_a_dual_pol_layer_is_the_vv_model(project, vh_vv_tif, bundled):
    """Bundled Water on a layer with VV and VH bands: the VV model (the engine's default, see
    sarmae_core.inference.model.bundled), reading the layer's VV band wherever it is."""
    from qgis_plugin.request import build_request

    layer = add_layer(project, vh_vv_tif, "dual-pol")
    dock = SarmaeDock(project)
    dock.layer_combo.setLayer(layer)
    labels = [dock.band_form.labelForField(c).text() for c in dock._band_boxes]
    assert labels == ["VV ←"]
    params = dock.parameters("water")
    assert params.bands == (2,)  # VV is band 2 in this file
    request = build_request(params, project)
    assert Path(request.model).name == "water.onnx"
    # a single-band layer keeps the VV model
    single = build_request(
        RunParameters(job="water", layer_id=add_layer(project, S1_VV_DB, "vv").id()), project
    )
    assert Path(single.model).name == "water.onnx"

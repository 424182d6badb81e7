"""The plugin's pure helpers: names, messages, settings, dependency commands, input rules."""

from __future__ import annotations

import pytest
from qgis.core import QgsSettings

from qgis_plugin import deps, settings
from qgis_plugin.naming import format_area_km2, layer_name, ships_message, short, water_message
from qgis_plugin.params import OUTPUT_FILES, RunParameters
from qgis_plugin.validation import (
    InputRefused,
    RasterFacts,
    check_bands,
    check_raster,
    default_bands,
)

pytestmark = pytest.mark.qgis

S1_NAME = "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db"


def facts(**kw) -> RasterFacts:
    base = dict(
        name="scene",
        path=f"/data/{S1_NAME}.tif",
        provider="gdal",
        georeferenced=True,
        band_count=1,
        descriptions=("",),
        data_types=("Float32",),
        colours=("gray",),
    )
    return RasterFacts(**(base | kw))


def test_layer_names_say_what_which_model_and_input():
    assert layer_name("Water", "water", "S1 VV") == "Water [water] S1 VV"
    name = layer_name("Ships", "ships", S1_NAME)
    assert len(name) <= len("Ships [ships] ") + 40 and name.endswith("norm_db") and "…" in name
    assert short("abc") == "abc"


def test_messages_give_area_and_count():
    assert format_area_km2(3.954) == "3.95 km²" and format_area_km2(0.0421) == "0.042 km²"
    assert format_area_km2(1234.5) == "1,234 km²" and format_area_km2(None) == "unknown area"
    assert water_message(3.954, "S1", "water", 2.31) == "Water: 3.95 km² in S1 (model water, 2.3 s)"
    assert ships_message(1, "S1", "ships", 0.25) == "1 ship detected in S1 (model ships, 0.25 s)"
    assert ships_message(0, "S1", "ships", 3).startswith("0 ships detected")


def test_settings_round_trip_types():
    p = RunParameters(
        job="ships",
        bands=(2, 1),
        units="db",
        tile=128,
        overlap=None,
        threshold=0.35,
        output=OUTPUT_FILES,
        output_path="/x/y.gpkg",
        add_mask=True,
    )
    settings.save(p)
    assert settings.load() == p
    QgsSettings().setValue(settings.KEY, "{not json")
    assert settings.load() == RunParameters()


def test_install_command_uses_qgis_python_into_the_plugins_folder_and_keeps_numpy():
    plan = deps.install_plan(["onnxruntime"])
    assert plan.argv[0] == deps.qgis_python()
    assert plan.argv[1:4] == ("-m", "pip", "install")
    assert "onnxruntime>=1.18,<2" in plan.argv
    assert set(deps.REQUIREMENTS) == {"onnxruntime"}  # files: GDAL's bindings, which QGIS has
    # PEP 668 Pythons refuse --user: a plugin-owned --target folder, and no numpy (QGIS's own
    # numpy is the one its GDAL was built with)
    assert "--user" not in plan.argv and "--no-deps" in plan.argv
    assert plan.argv[plan.argv.index("--target") + 1] == str(deps.deps_dir())
    assert not any(a.startswith("numpy") for a in plan.argv)
    assert plan.command.startswith(deps.qgis_python())
    assert deps.missing_modules() == []
    assert deps.missing_modules({"surely_not_a_module_xyz": "x"}) == ["surely_not_a_module_xyz"]


def test_raster_rules():
    check_raster(facts())
    with pytest.raises(InputRefused, match="optical RGB image"):
        check_raster(
            facts(band_count=3, data_types=("Byte",) * 3, colours=("red", "green", "blue"))
        )
    with pytest.raises(InputRefused, match="optical RGB image"):  # 8-bit, no colours: still
        check_raster(facts(band_count=3, data_types=("Byte",) * 3, colours=("gray",) * 3))
    check_raster(facts(band_count=3, data_types=("Float32",) * 3, colours=("gray",) * 3))
    with pytest.raises(InputRefused, match="no coordinate reference system"):
        check_raster(facts(georeferenced=False))
    with pytest.raises(InputRefused, match="not a raster file GDAL reads"):
        check_raster(facts(provider="wms"))


def test_band_rules():
    dual = facts(
        band_count=2,
        descriptions=("Sigma0_VH_db", "Sigma0_VV_db"),
        data_types=("Float32",) * 2,
        colours=("gray",) * 2,
    )
    assert default_bands(dual, ["VV"]) == [2]
    assert default_bands(dual, ["VV", "VH"]) == [2, 1]
    assert default_bands(facts(), ["VV"]) == [1]  # from the file name
    check_bands(dual, ["VV"], None)
    check_bands(dual, ["VV"], [2])
    with pytest.raises(InputRefused, match="band 3 does not exist"):
        check_bands(dual, ["VV"], [3])
    with pytest.raises(InputRefused, match="needs bands HH"):
        check_bands(dual, ["HH"], None)

"""Runs through the plugin as a user makes them: dock parameters -> validation -> QgsTask ->
styled layers and a message, on the real Sentinel-1 scene."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer

from qgis_plugin.params import AREA_CANVAS, AREA_POLYGONS, OUTPUT_FILES, RunParameters
from tests.qgis.conftest import add_layer, wait_until

pytestmark = pytest.mark.qgis

CRITICAL, WARNING = Qgis.MessageLevel.Critical, Qgis.MessageLevel.Warning
SUCCESS, INFO = Qgis.MessageLevel.Success, Qgis.MessageLevel.Info
#: Area of the S1 scene, km2 (268 x 217 px of 20 m).
SCENE_KM2 = 268 * 217 * 400 / 1e6


def messages(iface: Any, level: Any) -> list[str]:
    return iface.messageBar().get_messages(level)


def result_layers(project: QgsProject, input_id: str) -> list[Any]:
    return [layer for layer in project.mapLayers().values() if layer.id() != input_id]


def test_segment_water_synchronously_adds_styled_polygons(
    plugin, s1_layer, project, qgis_iface, bundled
):
    task = plugin.start(
        RunParameters(job="water", layer_id=s1_layer.id(), min_area_m2=2000, simplify_m=10),
        background=False,
    )
    assert task is not None and plugin.task is None
    outcome = plugin.last_outcome
    assert outcome.ok, outcome.error

    (water,) = result_layers(project, s1_layer.id())
    assert isinstance(water, QgsVectorLayer)
    assert water.crs() == s1_layer.crs()  # EPSG:32631, as the input
    assert water.featureCount() > 0  # a few large connected water bodies
    assert water.name() == "Water [water] S1A VV dB 2015-03-09"
    area_km2 = sum(f.geometry().area() for f in water.getFeatures()) / 1e6
    # The lagoons and marshes of this Camargue scene: the bundled model maps about a third of it.
    assert 0.2 * SCENE_KM2 < area_km2 < 0.45 * SCENE_KM2
    assert abs(area_km2 - outcome.result.summary.vector_area_km2) < 0.01 * area_km2
    assert all(f["area_m2"] >= 2000 for f in water.getFeatures())
    fill = water.renderer().symbol().symbolLayer(0)
    assert fill.color().blue() == 255 and 0 < fill.color().alpha() < 200  # blue, see-through

    (text,) = messages(qgis_iface, SUCCESS)
    assert f"Water: {area_km2:.2f} km²" in text and "S1A VV dB 2015-03-09" in text
    assert not messages(qgis_iface, CRITICAL)


def test_detect_ships_adds_boxes_with_score_labels(
    plugin, hrsid_layer, project, qgis_iface, bundled
):
    plugin.start(RunParameters(job="ships", layer_id=hrsid_layer.id()), background=False)
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    (ships,) = result_layers(project, hrsid_layer.id())
    count = plugin.last_outcome.result.summary.ship_count
    assert ships.featureCount() == count > 0
    assert ships.crs() == hrsid_layer.crs()
    for f in ships.getFeatures():
        assert 0.3 <= f["score"] <= 1.0  # the model's confidence threshold is 0.3
        box = f.geometry().boundingBox()
        assert 5 < max(box.width(), box.height()) < 400  # metres, on 1 m pixels
        assert f["length_m"] == pytest.approx(max(box.width(), box.height()), rel=0.01)
    assert ships.labelsEnabled()
    assert "score" in ships.labeling().settings().fieldName
    (text,) = messages(qgis_iface, SUCCESS)
    assert text.startswith(f"SARMAE:{count} ships detected in HRSID P0015 (1 m) (model ships, ")


def test_run_through_the_task_manager_keeps_qgis_responsive(
    plugin, project, qgis_iface, big_s1_tif, exported_model
):
    layer = add_layer(project, big_s1_tif, "S1 9x9")
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    # The exported ViT (what `sarmae export` writes), on 4.7 Mpx: a run of a second or two.
    params = RunParameters(job="water", layer_id=layer.id(), model=str(exported_model))
    task = plugin.start(params)
    assert task is not None
    assert QgsApplication.taskManager().countActiveTasks() >= 1 or plugin.task is None
    waited = wait_until(lambda: plugin.task is None)
    timer.stop()
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert waited > 0.5 and len(ticks) > waited / 0.05
    # The main thread kept serving its event loop: no stall longer than a quarter second.
    assert max(gaps) < 0.25, f"longest main-thread stall {max(gaps):.3f} s over {waited:.2f} s"
    (water,) = result_layers(project, layer.id())
    assert water.crs() == layer.crs() and water.featureCount() > 0
    assert plugin.dock.progress.value() == 100
    print(f"task-manager run: {waited:.2f} s, {len(ticks)} timer ticks, max gap {max(gaps):.3f} s")


def test_cancel_mid_run_leaves_no_layer_and_no_file(
    plugin, s1_layer, project, qgis_iface, models, tmp_path
):
    out = tmp_path / "results"
    out.mkdir()
    params = RunParameters(
        job="water",
        layer_id=s1_layer.id(),
        model=str(models["water"]),
        batch_size=1,
        output=OUTPUT_FILES,
        output_path=str(out / "water.gpkg"),
        add_mask=True,
    )
    progress: list[float] = []
    cancelled_at: list[float] = []

    def on_progress(p: float) -> None:
        progress.append(p)
        if p >= 20 and not cancelled_at:
            cancelled_at.append(p)
            plugin.cancel()  # what the dock's Cancel button does

    original = plugin.start

    def start_and_watch(p: RunParameters, background: bool = True) -> Any:
        plugin.dock.set_progress = on_progress  # type: ignore[method-assign]
        return original(p, background)

    task = start_and_watch(params, background=False)
    assert task is not None
    outcome = plugin.last_outcome
    assert outcome.cancelled and outcome.result is None
    # 30 tiles of one per batch, 3 % each: the run stopped on the next tile.
    assert max(progress) - cancelled_at[0] <= 2 * 90 / 30 + 0.01
    assert list(out.iterdir()) == []  # no gpkg, no tif, no partial or scratch file
    assert result_layers(project, s1_layer.id()) == []
    assert any("cancelled" in m for m in messages(qgis_iface, INFO))
    assert not messages(qgis_iface, CRITICAL)


def test_cancel_through_the_task_manager_removes_temporary_outputs(
    plugin, project, qgis_iface, big_s1_tif, models
):
    layer = add_layer(project, big_s1_tif, "S1 9x9")
    params = RunParameters(
        job="water", layer_id=layer.id(), model=str(models["water"]), batch_size=1
    )
    task = plugin.start(params)
    ends: list[str] = []  # QGIS announces "Task failed" for a terminated task
    task.taskTerminated.connect(lambda: ends.append("terminated"))
    task.taskCompleted.connect(lambda: ends.append("completed"))
    folder = Path(task.request.output).parent
    wait_until(lambda: task.progress() > 5 or plugin.task is None)
    plugin.dock.cancel_button.click()
    wait_until(lambda: plugin.task is None)
    wait_until(lambda: bool(ends))
    assert plugin.last_outcome.cancelled
    assert ends == ["completed"]  # a cancel is not a failure
    assert plugin.dock.progress.value() == 0  # reset, not left at the cancel's percentage
    assert not folder.exists()
    assert result_layers(project, layer.id()) == []


@pytest.mark.parametrize("kind", ["rgb", "nocrs"])
def test_refuses_optical_and_unreferenced_layers_with_a_clear_message(
    plugin, project, qgis_iface, rgb_tif, nocrs_tif, bundled, kind
):
    path, expected = {
        "rgb": (rgb_tif, "looks like an optical RGB image"),
        "nocrs": (nocrs_tif, "has no coordinate reference system"),
    }[kind]
    layer = add_layer(project, path, path.stem)
    assert plugin.start(RunParameters(job="water", layer_id=layer.id())) is None
    (text,) = messages(qgis_iface, WARNING)
    assert expected in text and path.stem in text
    assert plugin.task is None and result_layers(project, layer.id()) == []
    assert expected in plugin.dock.status.text()


def test_missing_bundled_model_is_explained(plugin, s1_layer, qgis_iface, no_bundled):
    assert plugin.start(RunParameters(job="ships", layer_id=s1_layer.id())) is None
    (text,) = messages(qgis_iface, WARNING)
    assert "bundled model for Detect ships is not installed" in text
    assert "Choose a model file (.onnx)" in text


def test_wrong_model_for_the_job_is_refused(plugin, s1_layer, qgis_iface, models):
    params = RunParameters(job="water", layer_id=s1_layer.id(), model=str(models["ships"]))
    assert plugin.start(params, background=False) is None
    (text,) = messages(qgis_iface, WARNING)
    assert "Segment water needs a segmentation model" in text


def test_engine_errors_go_to_the_message_bar_and_details_to_the_log(
    plugin, s1_layer, project, qgis_iface, models, log_messages
):
    # A tile that is not a multiple of the 16 px patch: the engine refuses it inside the task.
    params = RunParameters(job="water", layer_id=s1_layer.id(), model=str(models["water"]), tile=50)
    plugin.start(params, background=False)
    (text,) = messages(qgis_iface, CRITICAL)
    assert "Segment water failed" in text and "multiple of the model's 16 px" in text
    assert "details in the SARMAE log panel" in text
    details = [m for m, tag, level in log_messages if tag == "SARMAE" and level == CRITICAL]
    assert details and "Traceback" in details[-1] and "ConfigError" in details[-1]
    assert result_layers(project, s1_layer.id()) == []
    assert not plugin.dock.cancel_button.isEnabled()  # the run is over, the dock knows it


def test_unexpected_errors_never_escape_a_slot(plugin, s1_layer, qgis_iface, monkeypatch):
    import qgis_plugin.plugin as plugin_module

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(plugin_module, "build_request", broken)
    assert plugin.start(RunParameters(job="water", layer_id=s1_layer.id())) is None
    (text,) = messages(qgis_iface, CRITICAL)
    assert "unexpected error: boom" in text


def test_area_from_selected_polygons_and_from_the_canvas(
    plugin, s1_layer, project, qgis_iface, models
):
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle

    ext = s1_layer.extent()
    half = QgsRectangle(ext.xMinimum(), ext.yMinimum(), ext.center().x(), ext.yMaximum())
    polygons = QgsVectorLayer(f"Polygon?crs={s1_layer.crs().authid()}", "aoi", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(half))
    polygons.dataProvider().addFeatures([feature])
    project.addMapLayer(polygons)
    polygons.selectAll()

    base = dict(job="water", layer_id=s1_layer.id(), model=str(models["water"]))
    plugin.start(
        RunParameters(**base, area=AREA_POLYGONS, area_layer_id=polygons.id()), background=False
    )
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    water = next(lyr for lyr in project.mapLayers().values() if lyr.name().startswith("Water"))
    assert water.extent().xMaximum() <= half.xMaximum() + 20  # nothing east of the polygon
    west_km2 = plugin.last_outcome.result.summary.vector_area_km2
    project.removeMapLayer(water.id())

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(s1_layer.crs())
    canvas.setExtent(half)
    plugin.start(RunParameters(**base, area=AREA_CANVAS), background=False)
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    canvas_km2 = plugin.last_outcome.result.summary.vector_area_km2
    assert 0 < west_km2 < SCENE_KM2 and canvas_km2 > 0

    polygons.removeSelection()
    assert (
        plugin.start(RunParameters(**base, area=AREA_POLYGONS, area_layer_id=polygons.id())) is None
    )
    assert "no polygon of 'aoi' is selected" in messages(qgis_iface, WARNING)[-1]


def test_files_output_writes_geopackage_and_mask(plugin, s1_layer, project, models, tmp_path):
    params = RunParameters(
        job="water",
        layer_id=s1_layer.id(),
        model=str(models["water64"]),
        output=OUTPUT_FILES,
        output_path=str(tmp_path / "camargue"),
        add_mask=True,
    )
    plugin.start(params, background=False)
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camargue.gpkg", "camargue.tif"]
    names = sorted(lyr.name() for lyr in result_layers(project, s1_layer.id()))
    assert names == [
        "Water [water64] S1A VV dB 2015-03-09",
        "Water mask [water64] S1A VV dB 2015-03-09",
    ]
    # Running again without Overwrite is refused before anything runs.
    assert plugin.start(params, background=False) is None


def test_missing_onnxruntime_is_a_banner_and_a_click_offers_the_install(
    plugin, s1_layer, qgis_iface, monkeypatch
):
    from qgis.PyQt.QtWidgets import QMessageBox

    from qgis_plugin import deps

    real = deps.importlib.util.find_spec
    monkeypatch.setattr(
        deps.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    ran: list[Any] = []
    monkeypatch.setattr(deps, "run_install", lambda plan, *a: ran.append(plan) or (True, "ok"))
    asked: list[str] = []

    def answer(reply: Any) -> Any:
        return lambda _parent, _title, text, *a, **k: asked.append(text) or reply

    plugin.check_dependencies()
    plugin.dock.refresh()
    assert plugin.dock.banner.isVisibleTo(plugin.dock)
    assert "press Install" in plugin.dock.banner_text.text()
    assert plugin.dock.water_button.isEnabled()  # a click offers the install
    plan = deps.install_plan(["onnxruntime"])
    # pip --target into the plugin's own folder (PEP 668 refuses --user), QGIS's numpy untouched
    assert plan.argv[1:4] == ("-m", "pip", "install") and "--user" not in plan.argv
    assert plan.argv[plan.argv.index("--target") + 1] == str(deps.deps_dir())
    assert "--no-deps" in plan.argv and not any(a.startswith("numpy") for a in plan.argv)

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert plugin.start(RunParameters(job="water", layer_id=s1_layer.id())) is None
    wait_until(lambda: True)
    assert ran == [] and plan.command in asked[-1]  # declined: nothing ran

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    plugin.dock.install_button.click()
    wait_until(lambda: plugin._install_task is None, 30)
    assert [p.modules for p in ran] == [("onnxruntime",)]
    # still hidden by this test's find_spec: the plugin says to restart, not "installed"
    assert "restart QGIS" in messages(qgis_iface, WARNING)[-1]
    assert not messages(qgis_iface, CRITICAL)

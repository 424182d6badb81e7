"""The plugin zip: what it holds, installing it into a fresh QGIS profile the way QGIS does,
and the exact ``qgis_process`` command line users will type."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsProject, QgsVectorLayer

from tests.conftest import S1_VV_DB
from tests.qgis.conftest import ROOT, add_layer, load_build_script, wait_until

pytestmark = pytest.mark.qgis

PLUGIN = "sarmae_plugin"
#: Third-party packages the plugin's inference path may import: the issue's list.
ALLOWED = {"numpy", "onnxruntime", "osgeo"}
#: QGIS's own Python (not dependencies the user installs).
QGIS_OWN = {"qgis", "PyQt5", "PyQt6", "sip", "processing"}


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip as `python scripts/build_plugin.py` builds it: the real bundled models inside."""
    build = load_build_script()
    out = tmp_path_factory.mktemp("dist")
    return build.build(out, [])


@pytest.fixture
def profile(plugin_zip: Path, tmp_path: Path) -> Path:
    """A fresh QGIS settings folder with the plugin unzipped into its default profile."""
    plugins = tmp_path / "qgis-config" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    return tmp_path / "qgis-config"


def test_zip_holds_plugin_engine_models_and_metadata(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"{PLUGIN}/metadata.txt").decode()
    assert {n.split("/")[0] for n in names} == {PLUGIN}
    for needed in (
        "__init__.py",
        "plugin.py",
        "dock.py",
        "processing/provider.py",
        "icons/sarmae.svg",
        "LICENSE",
        "_vendor/__init__.py",
        "_vendor/sarmae_core/inference/predict.py",
        "_vendor/sarmae_core/export/reader.py",
        "_vendor/sarmae_core/models/bundled/water.onnx",
        "_vendor/sarmae_core/models/bundled/ships.onnx",
    ):
        assert f"{PLUGIN}/{needed}" in names, needed
    assert not any("torch" in n or "__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any("/models/" in n and n.endswith(".py") for n in names)  # no torch models code
    assert "hasProcessingProvider=yes" in metadata and "qgisMinimumVersion=3.22" in metadata
    assert (ROOT / "metadata.txt").read_text() == metadata


def test_build_is_reproducible_and_refuses_a_broken_engine(models, tmp_path):
    build = load_build_script()
    a = build.build(tmp_path / "a", [f"water={models['water']}"])
    b = build.build(tmp_path / "b", [f"water={models['water']}"])
    assert a.read_bytes() == b.read_bytes()

    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom ..models.heads import SegmentationModel\n")
    files = {f"{PLUGIN}/_vendor/sarmae_core/inference/bad.py": bad}
    with pytest.raises(SystemExit) as err:
        build.check_imports(files)
    assert "imports ['torch']" in str(err.value) and "models/heads which is not carried" in str(
        err.value
    )


def test_zip_loads_like_qgis_and_segments_water(profile, qgis_iface, project, monkeypatch):
    """Unzipped into a fresh profile, loaded by qgis.utils as QGIS loads plugins, run from
    its dock with its bundled Water model."""
    import qgis.utils

    plugins_dir = str(profile / "profiles" / "default" / "python" / "plugins")
    monkeypatch.setattr(qgis.utils, "plugin_paths", [plugins_dir])
    monkeypatch.syspath_prepend(plugins_dir)
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN in qgis.utils.available_plugins
    assert qgis.utils.pluginMetadata(PLUGIN, "name") == "SARMAE"
    assert qgis.utils.loadPlugin(PLUGIN) and qgis.utils.startPlugin(PLUGIN)
    try:
        plugin = qgis.utils.plugins[PLUGIN]
        assert type(plugin).__module__ == f"{PLUGIN}.plugin"
        layer = add_layer(project, S1_VV_DB, "S1 VV dB")
        dock = plugin.dock
        dock.layer_combo.setLayer(layer)
        assert dock.model_info.text() == "Water: installed (VV, VV+VH) · Ships: installed"
        dock.water_button.click()  # the dock emits, the plugin starts a QgsTask
        wait_until(lambda: plugin.task is None)
        assert plugin.last_outcome is not None, dock.status.text()
        assert plugin.last_outcome.ok, plugin.last_outcome.error
        water = [
            lyr
            for lyr in QgsProject.instance().mapLayers().values()
            if isinstance(lyr, QgsVectorLayer)
        ]
        assert len(water) == 1 and water[0].featureCount() > 0
        engine = sys.modules[f"{PLUGIN}._vendor.sarmae_core.inference.predict"]
        assert Path(engine.__file__).is_relative_to(profile)  # the zip's engine ran
    finally:
        qgis.utils.unloadPlugin(PLUGIN)
        for name in [m for m in sys.modules if m == PLUGIN or m.startswith(f"{PLUGIN}.")]:
            del sys.modules[name]


def _qgis_process() -> list[str]:
    """``qgis_process`` as installed. Debian's 3.22 wrapper script passes the desktop app's
    ``--noversioncheck`` to it and fails (qgis/QGIS#57683); the binary beside it takes the
    same command line."""
    exe = shutil.which("qgis_process")
    if exe is None:
        pytest.skip("qgis_process is not installed")
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    if "--noversioncheck" in probe.stdout + probe.stderr and Path(f"{exe}.bin").exists():
        return [f"{exe}.bin"]
    return [exe]


def test_qgis_process_run_segmentwater_command_line(profile, tmp_path):
    """`qgis_process run sarmae:segmentwater -- INPUT=... OUTPUT=...` with the installed zip."""
    site = next(p for p in sys.path if p.endswith("site-packages") and "venv" in p)
    env = os.environ | {
        "QGIS_CUSTOM_CONFIG_PATH": str(profile),
        # What `pip install --user onnxruntime` gives QGIS's Python; .pth files are not
        # read from PYTHONPATH, so the repository's sarmae_core stays invisible: the zip's runs.
        "PYTHONPATH": site,
        "QT_QPA_PLATFORM": "offscreen",
    }
    qgis_process = _qgis_process()
    enable = subprocess.run(
        [*qgis_process, "plugins", "enable", PLUGIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert enable.returncode == 0, enable.stdout + enable.stderr
    output = tmp_path / "water.gpkg"
    done = subprocess.run(
        [
            *qgis_process,
            "run",
            "sarmae:segmentwater",
            "--",
            f"INPUT={S1_VV_DB}",
            f"OUTPUT={output}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WATER_AREA_KM2:" in done.stdout
    layer = QgsVectorLayer(str(output), "water", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    assert layer.crs().authid() == "EPSG:32631"
    area = float(done.stdout.split("WATER_AREA_KM2:")[1].split()[0])
    assert 5.0 < area < 10.0  # the bundled model: about a third of the 23 km2 Camargue scene


@pytest.fixture(scope="module")
def imports_of_a_run(plugin_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Modules a fresh QGIS Python process has imported after the plugin (from the zip) ran
    Segment water through its task and through Processing; ``third_party``: the site-packages
    roots the plugin brought in beyond what QGIS and Processing load themselves. torch is
    installed in this Python, so its absence means the plugin never asked for it."""
    folder = tmp_path_factory.mktemp("fresh")
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(folder / "plugins")
    script = folder / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(folder / "plugins")!r}, "/usr/share/qgis/python/plugins"]
        from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
        app = QgsApplication([], False)
        app.initQgis()
        from processing.core.Processing import Processing
        Processing.initialize()
        import processing
        baseline = set(sys.modules)  # QGIS and Processing themselves
        import {PLUGIN}
        plugin = {PLUGIN}.classFactory(None)
        plugin.initProcessing()
        from {PLUGIN}.params import RunParameters
        layer = QgsRasterLayer({str(S1_VV_DB)!r}, "s1", "gdal")
        QgsProject.instance().addMapLayer(layer)
        task = plugin.start(RunParameters(job="water", layer_id=layer.id()), background=False)
        assert plugin.last_outcome.ok, plugin.last_outcome.error
        out = processing.run("sarmae:segmentwater", {{"INPUT": layer.source(),
                             "OUTPUT": {str(folder / "p.gpkg")!r}}})
        roots = {{}}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None) or ""
            if name not in baseline and "-packages" in path:
                roots.setdefault(name.split(".")[0], path)
        print(json.dumps({{"modules": sorted(sys.modules), "third_party": sorted(roots),
                           "area": out["WATER_AREA_KM2"]}}))
        plugin.unload()
        QgsProject.instance().removeAllMapLayers()
        app.exitQgis()
    """)
    )
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plugin_runs_never_import_torch(imports_of_a_run):
    modules = set(imports_of_a_run["modules"])
    assert not {m for m in modules if m.split(".")[0] in {"torch", "timm", "torchvision"}}
    assert imports_of_a_run["area"] > 0
    # The zip's own engine ran, though this Python also has sarmae_core installed: no clash.
    assert f"{PLUGIN}._vendor.sarmae_core.inference.predict" in modules
    assert "sarmae_core" not in modules


def test_plugin_inference_imports_only_numpy_onnxruntime_and_gdal(imports_of_a_run):
    extra = set(imports_of_a_run["third_party"]) - ALLOWED - QGIS_OWN
    assert not extra, f"third-party modules beyond the allowed: {sorted(extra)}"

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
import rasterio
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
        "_vendor/sarmae_core/contract/reader.py",
        "_vendor/sarmae_core/models/bundled/water.onnx",
        "_vendor/sarmae_core/models/bundled/ships.onnx",
    ):
        assert f"{PLUGIN}/{needed}" in names, needed
    assert not any("torch" in n or "__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any("/models/" in n and n.endswith(".py") for n in names)  # no torch models code
    assert not any("/export/" in n for n in names)  # the exporter is torch; the contract is not
    assert "hasProcessingProvider=yes" in metadata and "qgisMinimumVersion=3.22" in metadata
    assert (ROOT / "metadata.txt").read_text() == metadata


def test_zip_models_have_int8_weights_in_a_third_of_the_bytes(plugin_zip, tmp_path):
    """The zip's models are the bundled ones with int8 matrix products (issue 13: a smaller
    zip; the plugin's onnxruntime is the CPU one); `--weights float32` copies them byte for
    byte. test_zip_loads_like_qgis_and_segments_water runs them in QGIS."""
    import onnx

    from sarmae_core.contract.reader import read_model_info

    bundled = ROOT / "sarmae_core" / "models" / "bundled"
    with zipfile.ZipFile(plugin_zip) as zf:
        for name in ("water", "water_vvvh", "ships"):
            data = zf.read(f"{PLUGIN}/_vendor/sarmae_core/models/bundled/{name}.onnx")
            assert len(data) < 0.4 * (bundled / f"{name}.onnx").stat().st_size
            kinds = {t.data_type for t in onnx.load_from_string(data).graph.initializer}
            assert {onnx.TensorProto.INT8, onnx.TensorProto.FLOAT16} <= kinds
            (tmp_path / f"{name}.onnx").write_bytes(data)
            assert read_model_info(tmp_path / f"{name}.onnx") == read_model_info(
                bundled / f"{name}.onnx"
            )
    assert plugin_zip.stat().st_size < 30e6  # 63 MB with float32 weights
    # the README's line: python scripts/build_plugin.py --weights float32
    assert load_build_script().main(["--out", str(tmp_path / "f32"), "--weights", "float32"]) == 0
    with zipfile.ZipFile(tmp_path / "f32" / plugin_zip.name) as zf:
        data = zf.read(f"{PLUGIN}/_vendor/sarmae_core/models/bundled/water.onnx")
    assert data == (bundled / "water.onnx").read_bytes()


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
        assert dock.model_info.text() == (
            "Water: installed (VV, VV+VH) · Ships: installed · Flood: installed"
        )
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


def readme_block(marker: str) -> str:
    """The README's fenced bash block that contains ``marker``, as users copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("\n", 1)[1] for b in text.split("```bash")[1:]]
    found = [b.split("```", 1)[0] for b in blocks if marker in b.split("```", 1)[0]]
    assert len(found) == 1, f"README has {len(found)} bash blocks with {marker!r}"
    return found[0]


def test_readme_qgis_process_lines_run_with_onnxruntime_installed_by_the_plugin(profile, tmp_path):
    """The real dependency install, then the README's Debian `qgis_process` lines as written.

    The plugin's own install command (deps.install_plan: pip --target --no-deps) runs with
    Debian's /usr/bin/python3, the Python QGIS embeds here (PEP 668 marked), into the profile's
    folder; then `qgis_process.bin`, whose Python has no onnxruntime of its own, loads the
    plugin from the zip, which finds onnxruntime in that folder.
    """
    from qgis_plugin import deps

    if shutil.which("qgis_process.bin") is None:
        pytest.fail("qgis_process.bin is missing: scripts/setup.sh installs Debian's qgis")
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    folder = profile / "profiles" / "default" / "python" / "sarmae-deps" / py
    plan = deps.install_plan(["onnxruntime"])
    argv = ["/usr/bin/python3", *plan.argv[1:]]
    argv[argv.index("--target") + 1] = str(folder)
    ok, output = deps.run_install(deps.InstallPlan(plan.modules, tuple(argv)), timeout=600)
    assert ok, output
    assert (folder / "onnxruntime").is_dir() and not (folder / "numpy").exists()

    work = tmp_path / "work"
    work.mkdir()
    (work / "scene.tif").symlink_to(S1_VV_DB)
    pair = ROOT / "tests" / "fixtures" / "ombria_flood_pair"  # a real flood, the bundled model
    (work / "after.tif").symlink_to(pair / "after_VV_db.tif")
    (work / "before.tif").symlink_to(pair / "before_VV_db.tif")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"QGIS_CUSTOM_CONFIG_PATH": str(profile), "PATH": "/usr/bin:/bin"}
    lines = readme_block("qgis_process.bin run sarmae:segmentwater")
    done = subprocess.run(
        ["bash", "-e", "-c", lines], env=env, capture_output=True, text=True, timeout=600,
        cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WATER_AREA_KM2:" in done.stdout
    layer = QgsVectorLayer(str(work / "water.gpkg"), "water", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    assert layer.crs().authid() == "EPSG:32631"
    area = float(done.stdout.split("WATER_AREA_KM2:")[1].split()[0])
    assert 5.0 < area < 10.0  # the bundled model: about a third of the 23 km2 Camargue scene
    flood = float(done.stdout.split("FLOOD_AREA_KM2:")[1].split()[0])
    assert 3.0 < flood < 26.2  # of the 26.2 km2 of the four OMBRIA chips (make demo-flood: 13)
    with rasterio.open(work / "flood_likelihood.tif") as lk:
        assert lk.dtypes[0] == "uint8" and lk.read(1).max() <= 100


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

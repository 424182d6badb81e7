"""Fixtures for the plugin tests: real QGIS (pytest-qgis), the real Sentinel-1 scene, models.

pytest-qgis starts a real ``QgsApplication`` for the session and gives ``qgis_iface``, a
stand-in for QGIS's main window interface (the desktop application cannot run in CI); layers,
tasks, Processing, rendering and the plugin code are all real.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings
from qgis.PyQt.QtCore import QCoreApplication

from tests.conftest import S1_VV_DB, SHARED_DATA
from tests.qgis.sar_models import (
    export_test_segmentation,
    make_flood_model,
    make_ships_model,
    make_water_model,
)

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots land here too (``/out/`` is git-ignored) so that people can look at them.
SCREENSHOTS = ROOT / "out" / "screenshots"
#: The real bundled models (ONNX with their metadata and model cards).
BUNDLED_DIR = ROOT / "sarmae_core" / "models" / "bundled"
#: A real HRSID tile (Sentinel-1B/TerraSAR-X, 0.5-3 m; Wei et al. 2020, GPL-3.0) from a scene the
#: bundled Ships model did not train on, in ../shared/data: the S1 scene has no ships.
HRSID_TILE = SHARED_DATA / "hrsid_mini" / "mini_test" / "images" / "P0015_3600_4400_4200_5000.jpg"

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-in models for tests that need a model of their own (a file to pick, a fixed tile,
    a model for the wrong job): water and ships baselines and a fixed-tile water model."""
    folder = tmp_path_factory.mktemp("models")
    return {
        "water": make_water_model(folder / "water.onnx"),
        "ships": make_ships_model(folder / "ships.onnx"),
        "water64": make_water_model(folder / "water64.onnx", tile=64, name="water64"),
        "flood": make_flood_model(folder / "flood.onnx"),
    }


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real ``sarmae_test`` ViT segmentation network as ``export_onnx`` writes it (torch in
    set-up only; ~4 s)."""
    return export_test_segmentation(tmp_path_factory.mktemp("exported") / "sarmae_test.onnx")


@pytest.fixture
def bundled(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plugin with its real bundled Water and Ships models, as the zip carries them."""
    from qgis_plugin import catalogue

    assert (BUNDLED_DIR / "water.onnx").is_file() and (BUNDLED_DIR / "ships.onnx").is_file()
    monkeypatch.setattr(catalogue, "bundled_models_dir", lambda: BUNDLED_DIR)
    return BUNDLED_DIR


@pytest.fixture
def no_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build without bundled models (today's reality until they are trained)."""
    from qgis_plugin import catalogue

    monkeypatch.setattr(catalogue, "bundled_models_dir", lambda: tmp_path / "none")
    return tmp_path / "none"


@pytest.fixture
def project(qgis_new_project: QgsProject) -> Iterator[QgsProject]:
    """An empty project, cleared again afterwards (no layer outlives QGIS: exit 139 trap)."""
    yield qgis_new_project
    qgis_new_project.removeAllMapLayers()


@pytest.fixture
def s1_layer(project: QgsProject) -> QgsRasterLayer:
    """The real Sentinel-1 VV dB scene (Camargue, 2015-03-09, 20 m, EPSG:32631) as a layer."""
    layer = QgsRasterLayer(str(S1_VV_DB), "S1A VV dB 2015-03-09", "gdal")
    assert layer.isValid()
    project.addMapLayer(layer)
    return layer


def _write_like_s1(path: Path, data: np.ndarray, crs: bool = True, **profile: Any) -> Path:
    import rasterio

    with rasterio.open(S1_VV_DB) as src:
        meta = src.profile | {"count": data.shape[0], "dtype": data.dtype.name} | profile
        if not crs:
            meta["crs"] = None
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


@pytest.fixture
def hrsid_layer(project: QgsProject, tmp_path: Path) -> QgsRasterLayer:
    """The HRSID tile as a VV GeoTIFF layer. HRSID tiles are 8-bit greyscale chips without a
    georeference: they are placed at an arbitrary spot in UTM 51N with 1 m pixels, and their
    values passed on as they are (the Ships model standardises each tile, so any linear
    stretch of dB, like these chips, gives the same result; see ships.md)."""
    import rasterio
    from PIL import Image

    if not HRSID_TILE.is_file():
        pytest.skip(f"HRSID tile not found in {SHARED_DATA}")
    grey = np.asarray(Image.open(HRSID_TILE).convert("L"), dtype=np.float32)
    path = tmp_path / "HRSID_P0015_VV_db.tif"
    origin = rasterio.transform.from_origin(350_000.0, 3_460_000.0, 1.0, 1.0)
    profile = dict(driver="GTiff", width=grey.shape[1], height=grey.shape[0], count=1,
                   dtype="float32", crs="EPSG:32651", transform=origin)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(grey, 1)
        dst.set_band_description(1, "VV")
    return add_layer(project, path, "HRSID P0015 (1 m)")


@pytest.fixture
def rgb_tif(tmp_path: Path) -> Path:
    """An optical-looking RGB uint8 image derived from the S1 scene (same place, same grid)."""
    import rasterio
    from rasterio.enums import ColorInterp

    with rasterio.open(S1_VV_DB) as src:
        db = src.read(1)
    grey = np.clip((db + 25.0) / 25.0 * 255.0, 0, 255).astype(np.uint8)
    path = _write_like_s1(tmp_path / "optical_rgb.tif", np.stack([grey, grey, grey]), nodata=None)
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    return path


@pytest.fixture
def nocrs_tif(tmp_path: Path) -> Path:
    """The S1 scene with its CRS removed (pixels and grid unchanged)."""
    import rasterio

    with rasterio.open(S1_VV_DB) as src:
        data = src.read()
    return _write_like_s1(tmp_path / "S1_VV_db_nocrs.tif", data, crs=False)


@pytest.fixture
def big_s1_tif(tmp_path: Path) -> Path:
    """The S1 scene mirrored 9 x 9 (2412 x 1953 px, 4.7 Mpx): a run that lasts long enough to
    watch QGIS's event loop and to cancel (about 1.5 s with the fused ONNX test ViT here)."""
    import rasterio

    n = 9
    with rasterio.open(S1_VV_DB) as src:
        band = src.read(1)
    row = np.concatenate([band if i % 2 == 0 else band[:, ::-1] for i in range(n)], axis=1)
    big = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(n)], axis=0)[None]
    h, w = big.shape[1:]
    return _write_like_s1(tmp_path / f"S1_VV_db_{n}x{n}.tif", big, width=w, height=h)


def add_layer(project: QgsProject, path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid(), path
    project.addMapLayer(layer)
    return layer


def wait_until(done: Callable[[], bool], timeout: float = 60.0) -> float:
    """Let Qt run (signals, the task manager) until ``done()``; returns the seconds waited."""
    start = time.perf_counter()
    while not done():
        QCoreApplication.processEvents()
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the task did not finish in time")
        time.sleep(0.005)
    QCoreApplication.processEvents()
    return time.perf_counter() - start


@pytest.fixture
def plugin(qgis_iface: Any, project: QgsProject) -> Iterator[Any]:
    """The plugin as QGIS starts it: ``classFactory(iface)`` then ``initGui()``."""
    from qgis_plugin import classFactory

    qgis_iface.messageBar().clear_messages()
    instance = classFactory(qgis_iface)
    instance.initGui()
    yield instance
    if instance.task is not None:
        instance.task.cancel()
        wait_until(lambda: instance.task is None, 30)
    instance.unload()
    QgsApplication.taskManager().cancelAll()


@pytest.fixture
def log_messages() -> Iterator[list[tuple[str, str, Any]]]:
    """Everything written to QGIS's log panel during the test: (message, tag, level)."""
    seen: list[tuple[str, str, Any]] = []

    def record(message: str, tag: str, level: Any) -> None:
        seen.append((message, tag, level))

    log = QgsApplication.messageLog()
    log.messageReceived.connect(record)
    yield seen
    log.messageReceived.disconnect(record)


@pytest.fixture(autouse=True)
def _private_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The dock's saved settings start empty in every test and do not leak between tests."""
    from qgis_plugin import settings

    QgsSettings().remove(settings.KEY)
    yield
    QgsSettings().remove(settings.KEY)


def load_build_script() -> Any:
    """``scripts/build_plugin.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        "build_plugin", ROOT / "scripts" / "build_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_plugin"] = module
    spec.loader.exec_module(module)
    return module

"""Fixtures of the inference tests: real ONNX test models and the real Sentinel-1 raster, each
test run once with each IO backend (``SARMAE_IO=gdal`` and ``rasterio``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarmae_core.inference import CallableBackend

from ..conftest import S1_VV_DB
from .helpers import make_det_onnx, make_seg_onnx, seg_info


@pytest.fixture(params=["gdal", "rasterio"], autouse=True)
def io_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every inference test runs with each IO backend: GDAL's bindings and rasterio."""
    monkeypatch.setenv("SARMAE_IO", request.param)
    return request.param


@pytest.fixture(scope="session")
def s1_db() -> Path:
    """Real Sentinel-1 VV dB scene, 268 x 217 px, 20 m, EPSG:32631."""
    return S1_VV_DB


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "water": make_seg_onnx(d / "water.onnx"),
        "water9": make_seg_onnx(d / "water9.onnx", kernel=9),
        "ships": make_det_onnx(d / "ships.onnx"),
    }


@pytest.fixture
def identity() -> CallableBackend:
    """A one-channel 'model' that returns its input as the prediction, checking what it gets."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        # Nodata must never reach a model: no -99 fill values, no NaN.
        assert np.isfinite(batch).all() and not (batch == -99).any()
        return {"probabilities": batch.copy()}

    return CallableBackend(run, seg_info(class_names=["value"]), name="identity")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d

"""`pip install sarmae` (no extras) is the inference install: a fresh venv without the system's
site packages (no QGIS, no GDAL bindings, no torch) installs this source tree from the package
index, maps water on the demo scene through rasterio, and cannot import torch.

Needs the package index (PyPI), as CI has; pip's cache keeps a rerun to seconds of download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import S1_VV_DB

ROOT = Path(__file__).resolve().parents[2]
#: Debian's Python, the one QGIS runs; any other CPython 3.10+ would do.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

pytestmark = pytest.mark.slow


def source_tree(dest: Path) -> Path:
    """The working tree as git sees it (tracked and new files, nothing git ignores): what a
    release or a `pip install git+...` builds from, without runs/, out/ or .venv/."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is not part of it
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run(argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def test_plain_pip_install_predicts_water_without_torch(tmp_path):
    src = source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    made = run([PYTHON, "-m", "venv", str(venv)], 120)  # no --system-site-packages
    assert made.returncode == 0, made.stderr
    py, bin_ = venv / "bin" / "python", venv / "bin"
    # The only network step; bounded, and pip's cache makes reruns cheap.
    env = os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = run([str(py), "-m", "pip", "install", "-q", str(src)], 900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    60).stdout.strip())  # fmt: skip
    assert (site / "sarmae_core").is_dir()
    assert not (site / "qgis_plugin").exists()  # the plugin ships as a zip, not a package
    # the trainer installs under its own name: no generic top-level `training` package
    assert (site / "sarmae_train" / "configs" / "finetune_water_bundled.yaml").is_file()
    assert not (site / "training").exists()
    assert (site / "sarmae_core" / "models" / "bundled" / "water.onnx").is_file()
    torch = run([str(py), "-c", "import torch"], 60)
    assert "No module named 'torch'" in torch.stderr
    osgeo = run([str(py), "-c", "import osgeo"], 60)
    assert osgeo.returncode != 0  # so predict ran through rasterio, the plain-pip IO backend

    out = tmp_path / "out"
    out.mkdir()
    predict = run(
        [str(bin_ / "sarmae"), "predict", "water", str(S1_VV_DB), "-o", str(out / "water.gpkg"),
         "--raster", str(out / "water.tif")],
        600, env=env | {"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert predict.returncode == 0, predict.stdout + predict.stderr
    assert (out / "water.gpkg").stat().st_size > 0 and (out / "water.tif").stat().st_size > 0

    train = run([str(bin_ / "sarmae-train"), "--help"], 60)
    assert train.returncode == 2
    assert "pip install 'sarmae[train]'" in train.stderr and "Traceback" not in train.stderr
    presets = run([str(bin_ / "sarmae"), "presets"], 60)
    assert presets.returncode == 2 and "pip install 'sarmae[train]'" in presets.stderr

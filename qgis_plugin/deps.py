"""Python packages the plugin needs beyond QGIS, and how to install them where QGIS finds them.

The plugins users complain about (Deepness, GeoAI, Geo-SAM) break QGIS by letting pip upgrade
numpy under GDAL, or fail outright: ``pip install --user`` is refused by every Python marked
externally managed (PEP 668: Debian 12+, Ubuntu 23.04+, Homebrew). Here pip installs with
``--target`` into a folder the plugin owns (in the QGIS profile, so a plugin upgrade keeps it),
which PEP 668 allows, and with ``--no-deps``: onnxruntime runs on the numpy QGIS already has, so
nothing of QGIS's own Python is touched. :func:`activate` puts that folder on ``sys.path`` when
the plugin loads (and right after an install: no restart needed). Nothing is installed unless
the user agrees to the exact command shown.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: module name -> pip requirement. onnxruntime runs the models; files are read and written
#: with GDAL's own Python bindings, which QGIS ships.
REQUIREMENTS: dict[str, str] = {
    # 1.18: the first release that reads ONNX IR 10, the IR of the bundled models (checked at
    # load by ir_problem); <2 keeps a future major release from arriving untested.
    "onnxruntime": "onnxruntime>=1.18,<2",
}
#: pip may take long on a slow connection, but must not hang a QGIS task forever.
INSTALL_TIMEOUT_S = 900


def deps_dir() -> Path:
    """The plugin's own package folder, per Python version (binary wheels are per ABI):
    ``<QGIS profile>/python/sarmae-deps/py311``."""
    from qgis.core import QgsApplication

    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(QgsApplication.qgisSettingsDirPath()) / "python" / "sarmae-deps" / version


def activate() -> Path:
    """Put :func:`deps_dir` first on ``sys.path`` (before an older onnxruntime QGIS's Python
    may have); harmless when it does not exist yet."""
    folder = str(deps_dir())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()  # a folder filled after start-up is seen now
    return Path(folder)


def missing_modules(requirements: dict[str, str] | None = None) -> list[str]:
    """Modules of ``requirements`` that QGIS's Python cannot import."""
    reqs = REQUIREMENTS if requirements is None else requirements
    return [m for m in reqs if importlib.util.find_spec(m) is None]


def qgis_python() -> str:
    """The Python interpreter QGIS embeds, as a command to run pip with.

    ``sys.executable`` cannot be trusted inside QGIS: it is QGIS itself on Windows and macOS,
    and on Linux whatever ``python3`` comes first on PATH (pyenv, conda), not necessarily the
    Python QGIS runs. The interpreter of this version under ``sys.prefix`` is.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.prefix)
    if os.name == "nt":
        candidates = [prefix / "python.exe", prefix / "python3.exe"]
    else:
        candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        candidates.append(exe)
    for path in candidates:
        if path.is_file():
            return str(path)
    return "python3"


@dataclass(frozen=True)
class InstallPlan:
    """The command that installs ``modules``, as arguments and as one line to show."""

    modules: tuple[str, ...]
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        if os.name == "nt":
            return subprocess.list2cmdline(self.argv)
        return shlex.join(self.argv)


def install_plan(modules: list[str] | tuple[str, ...]) -> InstallPlan:
    """pip command for ``modules`` into :func:`deps_dir`, leaving QGIS's own packages alone."""
    argv = [qgis_python(), "-m", "pip", "install", "--disable-pip-version-check", "--upgrade"]
    # --no-deps: onnxruntime needs only numpy to run a model, and QGIS's numpy is the one its
    # GDAL was built with; its other requirements (sympy, protobuf, ...) serve its tools only.
    argv += ["--no-deps", "--target", str(deps_dir())]
    argv += [REQUIREMENTS.get(m, m) for m in modules]
    return InstallPlan(tuple(modules), tuple(argv))


def missing_message(modules: list[str]) -> str:
    """What to tell the user when ``modules`` are missing."""
    return (
        f"SARMAE needs {', '.join(modules)}, which QGIS's Python does not have: press Install "
        "(it goes into SARMAE's own folder; QGIS's packages stay as they are)"
    )


def ir_problem(models: list[Path]) -> str | None:
    """What to upgrade when the installed onnxruntime cannot read one of ``models`` (IR and
    opset versions checked against onnxruntime's), else None."""
    from .core import core

    try:
        import onnxruntime
    except ImportError:
        return None
    reader = core("contract.reader")
    for path in models:
        try:
            text = reader.onnxruntime_too_old(path, onnxruntime.__version__)
        except Exception:  # an unreadable file is reported when the model is used
            continue
        if text is not None:
            where = Path(onnxruntime.__file__).parent.parent
            return f"{text}; it was found in {where}: press Install to put a newer one first"
    return None


def pip_failure(output: str) -> str:
    """The line of pip's output that says why, as one sentence with what to do."""
    if "No module named pip" in output:
        return "QGIS's Python has no pip: install it (Debian/Ubuntu: sudo apt install python3-pip)"
    lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR")]
    lines += [ln.strip() for ln in output.splitlines() if ln.strip().startswith("error:")]
    reason = lines[0] if lines else (output.strip().splitlines() or ["no output"])[-1]
    return f"pip failed: {reason[:300]}"


def run_install(plan: InstallPlan, timeout: float = INSTALL_TIMEOUT_S) -> tuple[bool, str]:
    """Run ``plan`` (call it from a background task); returns success and pip's output."""
    try:
        done = subprocess.run(
            list(plan.argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{plan.command}\nfailed to run: {exc}"
    output = f"{plan.command}\n{done.stdout}\n{done.stderr}".strip()
    return done.returncode == 0, output

"""Python packages the plugin needs beyond QGIS, and how to install them into QGIS's Python.

The plugins users complain about (Deepness, GeoAI, Geo-SAM) break QGIS by letting pip upgrade
numpy under GDAL, or install silently. Here the user sees the exact command first and nothing
is installed unless they agree; the command pins numpy to the version QGIS already has, so pip
cannot replace the numpy that QGIS's GDAL bindings were built against.
"""

from __future__ import annotations

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
    "onnxruntime": "onnxruntime>=1.18",
}
#: pip may take long on a slow connection, but must not hang a QGIS task forever.
INSTALL_TIMEOUT_S = 900


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
    """pip command for ``modules`` into QGIS's Python, leaving its numpy as it is."""
    argv = [qgis_python(), "-m", "pip", "install"]
    if sys.prefix == sys.base_prefix:  # a system Python: install for this user, no admin rights
        argv.append("--user")
    argv += [REQUIREMENTS.get(m, m) for m in modules]
    try:
        import numpy

        argv.append(f"numpy=={numpy.__version__}")
    except ImportError:  # pragma: no cover - QGIS always ships numpy
        pass
    return InstallPlan(tuple(modules), tuple(argv))


def missing_message(modules: list[str]) -> str:
    """What to tell the user when ``modules`` are missing, with the command to run."""
    plan = install_plan(modules)
    return (
        f"SARMAE needs {', '.join(plan.modules)}, which QGIS's Python does not have. "
        f"Install with QGIS's Python, then restart QGIS:\n{plan.command}"
    )


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

"""Where the plugin finds ``sarmae_core``: its own vendored copy first, else an installed one.

The plugin zip carries the torch-free part of ``sarmae_core`` as the subpackage
``<plugin>._vendor.sarmae_core`` (``scripts/build_plugin.py``). It is imported under that
qualified name, never put on ``sys.path``: every module of ``sarmae_core`` imports its siblings
relatively, so the vendored copy works as a subpackage, and it can neither shadow nor be
shadowed by a ``sarmae_core`` installed in QGIS's Python (another version, a developer's
checkout). The plugin therefore always runs the engine it was built and tested with. In a
development checkout there is no ``_vendor`` and the installed package is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

#: Where the build puts the vendored engine, relative to this package.
VENDORED = "_vendor.sarmae_core"


@lru_cache(maxsize=1)
def core_package() -> str:
    """Dotted name of the ``sarmae_core`` the plugin uses."""
    vendored = f"{__package__}.{VENDORED}"
    try:
        if importlib.util.find_spec(vendored) is not None:
            return vendored
    except ModuleNotFoundError:  # no _vendor package: a development checkout
        pass
    return "sarmae_core"


def core(module: str = "") -> ModuleType:
    """``sarmae_core`` or one of its modules, e.g. ``core("inference.predict")``.

    Imported on first use, not when QGIS loads the plugin: the engine pulls in numpy,
    onnxruntime and GDAL, which only a run needs.
    """
    name = core_package() + (f".{module}" if module else "")
    return importlib.import_module(name)


def bundled_models_dir() -> Path:
    """Folder of the bundled ``<name>.onnx`` models of the engine in use.

    The same place ``sarmae_core.inference.model.backends.BUNDLED_DIR`` names, found from the
    package's location so that listing models imports neither the engine nor GDAL.
    """
    spec = importlib.util.find_spec(core_package())
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "bundled"

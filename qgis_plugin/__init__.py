"""SARMAE for QGIS: water and ship mapping on SAR with deep learning.

QGIS imports this package and calls :func:`classFactory`; ``qgis_process`` does too, with
``iface`` set to None, and then only calls ``initProcessing``. Nothing heavy is imported here so
that QGIS starts fast whatever the plugin needs later.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """The plugin instance QGIS asks for (``iface`` is None under ``qgis_process``)."""
    from . import deps

    deps.activate()  # onnxruntime installed by the plugin lives in its own folder (deps.py)
    from .plugin import SarmaePlugin

    return SarmaePlugin(iface)

"""Turning a finished run into styled layers and one sentence (main thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer, QgsVectorLayer

from .naming import layer_name, ships_message, water_message
from .styling import style_flood, style_mask, style_ships, style_water
from .task import TaskOutcome

#: Layer kind and style of each job's polygons or boxes.
KINDS = {"water": ("Water", style_water), "ships": ("Ships", style_ships),
         "flood": ("Flood", style_flood)}  # fmt: skip


def add_result_layers(outcome: TaskOutcome, project: QgsProject) -> list[QgsMapLayer]:
    """Add the outputs of a successful run to ``project``, styled; returns them.

    The mask goes in first so the polygons or boxes draw above it.

    Raises:
        RuntimeError: QGIS cannot open a file the run wrote.
    """
    req, files = outcome.request, outcome.result.files
    layers: list[QgsMapLayer] = []
    if "class" in files:
        kind = f"{KINDS[req.job][0]} mask"
        mask = QgsRasterLayer(
            str(files["class"]), layer_name(kind, req.model_label, req.input_name), "gdal"
        )
        _check(mask, files["class"])
        style_mask(mask)
        layers.append(mask)
    if "vector" in files:
        kind, style = KINDS[req.job]
        vector = QgsVectorLayer(
            str(files["vector"]), layer_name(kind, req.model_label, req.input_name), "ogr"
        )
        _check(vector, files["vector"])
        style(vector)
        layers.append(vector)
    for layer in layers:
        project.addMapLayer(layer)
    return layers


def summary_message(outcome: TaskOutcome) -> str:
    """``Water: 3.95 km² in …``, ``Flood: 1.2 km² in …`` or ``7 ships detected in …``."""
    req, s = outcome.request, outcome.result.summary
    if req.job in ("water", "flood"):
        # The polygons' area (after the minimum-area filter) is what the map shows.
        mapped = s.water_area_km2 if req.job == "water" else s.class_area_km2.get("flood")
        area = s.vector_area_km2 if s.vector_area_km2 is not None else mapped
        kind = KINDS[req.job][0]
        return water_message(area, req.input_name, req.model_label, s.seconds, kind)
    return ships_message(s.ship_count, req.input_name, req.model_label, s.seconds)


def _check(layer: QgsMapLayer, path: Any) -> None:
    if not layer.isValid():
        raise RuntimeError(f"QGIS cannot open the result {Path(path)}")

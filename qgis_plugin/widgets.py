"""Small widget helpers for the dock: labels that say ok or not, spin boxes, combos."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProject, QgsRasterLayer, QgsUnitTypes
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSizePolicy, QSpinBox

#: Green for what is fine, red for what stops a run (readable on light and dark themes).
_OK, _BAD = "color: #2e7d32;", "color: #c62828;"


def describe_layer(layer: QgsRasterLayer, facts: Any) -> str:
    """``1 band · Float32 · EPSG:32631 · 20 m pixels``."""
    bands = f"{facts.band_count} band{'s' if facts.band_count != 1 else ''}"
    dtype = facts.data_types[0] if facts.data_types else "?"
    crs = layer.crs().authid() or "custom CRS"
    unit = QgsUnitTypes.toAbbreviatedString(layer.crs().mapUnits())
    return f"{bands} · {dtype} · {crs} · {layer.rasterUnitsPerPixelX():.3g} {unit} pixels"


def use_project(combo: QgsMapLayerComboBox, project: QgsProject) -> None:
    """Layers of ``project`` (``setProject`` is QGIS >= 3.24; before, always the main one)."""
    if hasattr(combo, "setProject"):
        combo.setProject(project)


def note() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return label


def caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold;")
    return label


def say(label: QLabel, text: str, ok: bool) -> None:
    label.setText(text)
    label.setStyleSheet(_OK if ok else _BAD)


def spin(low: int, high: int, step: int, special: str, suffix: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    if special:
        spin.setSpecialValueText(special)  # shown at the minimum: use the model's value
    return spin


def double(
    low: float, high: float, step: float, decimals: int, special: str, suffix: str
) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    if special:
        spin.setSpecialValueText(special)
    return spin


def select(combo: QComboBox, data: Any) -> None:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)

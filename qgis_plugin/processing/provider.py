"""The ``sarmae`` Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import DetectShips, MapFlood, RunModel, SegmentWater

ICON = Path(__file__).resolve().parents[1] / "icons" / "sarmae.svg"


class SarmaeProvider(QgsProcessingProvider):
    """Algorithms ``sarmae:segmentwater``, ``sarmae:detectships`` and ``sarmae:runmodel``."""

    def id(self) -> str:
        return "sarmae"

    def name(self) -> str:
        return "SARMAE"

    def longName(self) -> str:
        return "SARMAE: deep learning on SAR (water, ships)"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:
        for algorithm in (SegmentWater(), DetectShips(), MapFlood(), RunModel()):
            self.addAlgorithm(algorithm)

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return ["gpkg"]  # sarmae writes GeoPackages (layers, CRS and field types intact)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

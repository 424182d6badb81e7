"""Enum spellings that differ between QGIS 3.22 and QGIS 4 (Qt6).

QGIS 3.x moved many enums from their classes into ``Qgis`` (e.g. ``QgsProcessing.TypeVectorPolygon``
became ``Qgis.ProcessingSourceType.VectorPolygon`` in 3.36) and QGIS 4 drops the old spellings.
Each constant below takes the newest spelling that exists, so one plugin runs on both.
"""

from __future__ import annotations

from typing import Any

from qgis import core as _core
from qgis import gui as _gui


def first(*paths: str) -> Any:
    """The first of the dotted ``paths`` (in ``qgis.core`` or ``qgis.gui``) that exists."""
    for path in paths:
        for module in (_core, _gui):
            obj: Any = module
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                continue
            return obj
    raise AttributeError(f"none of {paths} exists in this QGIS")


MSG_INFO = first("Qgis.MessageLevel.Info")
MSG_WARNING = first("Qgis.MessageLevel.Warning")
MSG_CRITICAL = first("Qgis.MessageLevel.Critical")
MSG_SUCCESS = first("Qgis.MessageLevel.Success")

TASK_CAN_CANCEL = first("QgsTask.Flag.CanCancel", "QgsTask.CanCancel")

SOURCE_POLYGON = first("Qgis.ProcessingSourceType.VectorPolygon", "QgsProcessing.TypeVectorPolygon")
NUMBER_INTEGER = first(
    "Qgis.ProcessingNumberParameterType.Integer", "QgsProcessingParameterNumber.Type.Integer"
)
NUMBER_DOUBLE = first(
    "Qgis.ProcessingNumberParameterType.Double", "QgsProcessingParameterNumber.Type.Double"
)
FILE_BEHAVIOR_FILE = first(
    "Qgis.ProcessingFileParameterBehavior.File", "QgsProcessingParameterFile.Behavior.File"
)
GEOMETRY_POLYGON = first("Qgis.GeometryType.Polygon", "QgsWkbTypes.GeometryType.PolygonGeometry")

RENDER_MM = first("Qgis.RenderUnit.Millimeters", "QgsUnitTypes.RenderUnit.RenderMillimeters")
RENDER_POINTS = first("Qgis.RenderUnit.Points", "QgsUnitTypes.RenderUnit.RenderPoints")
LABEL_OUTSIDE_POLYGONS = first(
    "Qgis.LabelPlacement.OutsidePolygons", "QgsPalLayerSettings.Placement.OutsidePolygons"
)

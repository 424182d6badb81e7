"""How results look on the map: readable over a grey SAR backdrop without hiding it."""

from __future__ import annotations

from qgis.core import (
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor, QFont

from .compat import LABEL_OUTSIDE_POLYGONS, RENDER_MM, RENDER_POINTS

#: Water: light blue at ~45 % opacity, so the SAR texture under it stays visible (open water is
#: dark in SAR: a dark blue would vanish into it), with a bright cyan rim.
WATER_FILL = "40,150,255,115"
WATER_OUTLINE = "0,200,255,255"
#: New flood: red-orange at ~45 % opacity with a dark red rim, apart from water's blue, as
#: flood services draw flood extents over reference water.
FLOOD_FILL = "255,80,40,115"
FLOOD_OUTLINE = "200,30,0,255"
#: Ships: amber outlines, the colour that stands out best on grey speckle, no fill.
SHIP_OUTLINE = "255,176,0,255"
#: Opacity of the optional raster mask (its colour table comes from sarmae: water blue).
MASK_OPACITY = 0.6


def style_water(layer: QgsVectorLayer, flood: bool = False) -> None:
    """Semi-transparent blue polygons (red-orange for new flood)."""
    symbol = QgsFillSymbol.createSimple(
        {
            "color": FLOOD_FILL if flood else WATER_FILL,
            "outline_color": FLOOD_OUTLINE if flood else WATER_OUTLINE,
            "outline_width": "0.3",
            "outline_width_unit": "MM",
            "joinstyle": "round",
        }
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    layer.triggerRepaint()


def style_flood(layer: QgsVectorLayer) -> None:
    """Semi-transparent red-orange polygons."""
    style_water(layer, flood=True)


def style_ships(layer: QgsVectorLayer, score_field: str = "score") -> None:
    """Box outlines, each with its score as a label beside it."""
    symbol = QgsFillSymbol.createSimple(
        {
            "color": "0,0,0,0",
            "outline_color": SHIP_OUTLINE,
            "outline_width": "0.5",
            "outline_width_unit": "MM",
            "joinstyle": "miter",
        }
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))

    fmt = QgsTextFormat()
    font = QFont()
    font.setBold(True)
    fmt.setFont(font)
    fmt.setSize(9)
    fmt.setSizeUnit(RENDER_POINTS)
    fmt.setColor(QColor(255, 255, 255))
    buffer = QgsTextBufferSettings()  # a dark halo keeps labels legible on bright clutter
    buffer.setEnabled(True)
    buffer.setSize(0.7)
    buffer.setSizeUnit(RENDER_MM)
    buffer.setColor(QColor(0, 0, 0, 220))
    fmt.setBuffer(buffer)

    label = QgsPalLayerSettings()
    label.fieldName = f'format_number("{score_field}", 2)'
    label.isExpression = True
    # Beside the box, never over it: a ship is a few bright pixels that a label would hide.
    label.placement = LABEL_OUTSIDE_POLYGONS
    label.dist = 0.5
    label.distUnits = RENDER_MM
    label.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(label))
    layer.setLabelsEnabled(True)
    layer.triggerRepaint()


def style_mask(layer: QgsRasterLayer) -> None:
    """The class raster keeps its colour table (background transparent, water blue)."""
    layer.setOpacity(MASK_OPACITY)
    layer.triggerRepaint()

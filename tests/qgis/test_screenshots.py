"""Screenshots of the dock and of a map canvas with results, saved as test artifacts.

They land in the test's temporary folder and in ``out/screenshots/`` (git-ignored) for people
to look at: the real bundled models' results over SAR in grey (a 2-98 % stretch): water in
see-through blue on the S1 scene, ships as amber boxes with their scores on an HRSID tile.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import (
    QgsBilinearRasterResampler,
    QgsContrastEnhancement,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QEventLoop, QSize, QTimer
from qgis.PyQt.QtGui import QColor, QImage, QPainter

from tests.qgis.conftest import SCREENSHOTS

pytestmark = pytest.mark.qgis


def style_sar_backdrop(layer: QgsRasterLayer) -> tuple[float, float]:
    """Grey, stretched between the 2nd and 98th percentiles of the valid dB values."""
    import rasterio

    with rasterio.open(layer.source()) as src:
        band = src.read(1, masked=True)
    low, high = (float(v) for v in np.percentile(band.compressed(), [2, 98]))
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(1))
    ce.setContrastEnhancementAlgorithm(
        QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum
    )
    ce.setMinimumValue(low)
    ce.setMaximumValue(high)
    renderer.setContrastEnhancement(ce)
    layer.setRenderer(renderer)
    # Bilinear when zoomed in: 20 m pixels drawn as blocks hide the shapes people look for.
    layer.resampleFilter().setZoomedInResampler(QgsBilinearRasterResampler())
    return low, high


def render_canvas(layers: list[Any], extent: Any, crs: Any, size: QSize) -> QImage:
    """A real QgsMapCanvas drawing ``layers`` (top first), grabbed once it has rendered."""
    canvas = QgsMapCanvas()
    canvas.resize(size)
    canvas.setCanvasColor(QColor(40, 40, 40))
    canvas.setDestinationCrs(crs)
    canvas.setLayers(layers)
    canvas.show()
    canvas.setExtent(extent)
    loop = QEventLoop()
    canvas.mapCanvasRefreshed.connect(loop.quit)
    QTimer.singleShot(20000, loop.quit)
    canvas.refresh()
    loop.exec()
    image = canvas.grab().toImage()
    canvas.hide()
    canvas.deleteLater()
    return image


def side_by_side(left: QImage, right: QImage) -> QImage:
    height = max(left.height(), right.height())
    out = QImage(left.width() + right.width(), height, QImage.Format.Format_ARGB32)
    out.fill(QColor(240, 240, 240))
    painter = QPainter(out)
    painter.drawImage(0, 0, left)
    painter.drawImage(left.width(), (height - right.height()) // 2, right)
    painter.end()
    return out


def colour_share(image: QImage, test: Any) -> float:
    """Share of pixels whose (r, g, b) pass ``test``, on a 4 px grid."""
    hits = total = 0
    for y in range(0, image.height(), 4):
        for x in range(0, image.width(), 4):
            c = image.pixelColor(x, y)
            total += 1
            hits += bool(test(c.red(), c.green(), c.blue()))
    return hits / total


def test_screenshots_of_dock_and_maps_with_results(
    bundled, plugin, s1_layer, hrsid_layer, project, tmp_path
):
    """The real bundled models: Water on the S1 scene, Ships on a held-out HRSID tile (the S1
    scene, inland wetlands, has no ships)."""
    low, high = style_sar_backdrop(s1_layer)
    assert -24 < low < -18 and -7 < high < -2  # a dB stretch, from the data
    style_sar_backdrop(hrsid_layer)
    dock = plugin.dock
    dock.min_area_spin.setValue(2000)
    dock.simplify_spin.setValue(10)
    dock.mask_check.setChecked(False)
    dock.layer_combo.setLayer(hrsid_layer)
    plugin.start(dock.parameters("ships"), background=False)
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    ship_count = plugin.last_outcome.result.summary.ship_count
    dock.layer_combo.setLayer(s1_layer)
    plugin.start(dock.parameters("water"), background=False)
    assert plugin.last_outcome.ok, plugin.last_outcome.error
    water = next(lyr for lyr in project.mapLayers().values() if lyr.name().startswith("Water"))
    ships = next(lyr for lyr in project.mapLayers().values() if lyr.name().startswith("Ships"))
    assert ships.featureCount() == ship_count > 0

    dock.setFloating(True)
    dock.resize(430, 1000)
    dock.show()
    dock_image = dock.grab().toImage()
    extent = s1_layer.extent()
    extent.scale(1.02)
    water_map = render_canvas([water, s1_layer], extent, s1_layer.crs(), QSize(820, 680))
    ships_map = render_canvas(
        [ships, hrsid_layer], hrsid_layer.extent(), hrsid_layer.crs(), QSize(680, 680)
    )

    out = {
        "dock": dock_image,
        "map": water_map,
        "ships": ships_map,
        "overview": side_by_side(side_by_side(dock_image, water_map), ships_map),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, image in out.items():
        path = tmp_path / f"sarmae_{name}.png"
        assert image.save(str(path))
        shutil.copy(path, SCREENSHOTS / path.name)

    # What a person would check at a glance, measured: grey SAR, blue water, amber ships.
    def blue(r: int, g: int, b: int) -> bool:
        return b > r + 40 and b > g + 10

    def amber(r: int, g: int, b: int) -> bool:
        return r > 200 and 120 < g < 210 and b < 80

    def grey(r: int, g: int, b: int) -> bool:
        return abs(r - g) < 8 and abs(g - b) < 8 and r > 60

    assert 0.05 < colour_share(water_map, blue) < 0.5
    assert colour_share(water_map, grey) > 0.2
    assert colour_share(ships_map, amber) > 0.0005 and colour_share(ships_map, blue) < 0.001
    assert colour_share(ships_map, grey) > 0.05
    assert Path(SCREENSHOTS / "sarmae_overview.png").stat().st_size > 50_000
    dock.hide()

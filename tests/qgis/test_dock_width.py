"""The dock at QGIS's default dock width (298 px): nothing clipped, the dependency banner on top.

Also saves ``out/screenshots/dock_298.png`` for people to look at.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QAbstractButton, QLabel, QWidget

from tests.qgis.conftest import SCREENSHOTS

pytestmark = pytest.mark.qgis

#: QGIS's default width of a dock on the right (a fresh profile, 1080p screen).
DEFAULT_DOCK_WIDTH = 298


def hide_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    from qgis_plugin import deps

    real = deps.importlib.util.find_spec
    monkeypatch.setattr(
        deps.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )


def clipped(dock: Any) -> list[str]:
    """Visible widgets that stick out of the dock's viewport, and buttons narrower than their
    text ("Canc" for Cancel). Combo boxes may elide a long layer name: by design."""
    viewport = dock.widget().viewport()
    out = []
    for w in dock.widget().widget().findChildren(QWidget):
        if not w.isVisibleTo(dock) or w.width() <= 0:
            continue
        right = w.mapTo(viewport, w.rect().topRight()).x()
        name = w.text() if isinstance(w, QAbstractButton | QLabel) else type(w).__name__
        if right >= viewport.width():
            out.append(f"{name!r} ends at {right} px of {viewport.width()}")
        if isinstance(w, QAbstractButton) and w.width() < w.sizeHint().width():
            out.append(f"button {name!r} is {w.width()} px, needs {w.sizeHint().width()}")
    return out


def test_dock_fits_the_default_width_with_the_install_banner(
    plugin, s1_layer, bundled, monkeypatch, tmp_path
):
    hide_onnxruntime(monkeypatch)
    assert not plugin.check_dependencies()
    dock = plugin.dock
    dock.refresh()
    dock.layer_combo.setLayer(s1_layer)
    dock.show_status(
        "Segment water on S1A VV dB 2015-03-09: 7.1 km² of water in 41 polygons (2.3 s)", True
    )
    dock.setFloating(True)
    dock.resize(DEFAULT_DOCK_WIDTH, 1500)  # tall: the picture shows the whole form
    dock.show()
    for _ in range(3):  # let the layouts settle (the scroll bar shows after the first pass)
        QCoreApplication.processEvents()
    image = dock.grab().toImage()
    for folder in (tmp_path, SCREENSHOTS):
        folder.mkdir(parents=True, exist_ok=True)
        image.save(str(folder / "dock_298.png"))
    try:
        assert dock.width() == DEFAULT_DOCK_WIDTH
        # The banner is on top, says what to do, with its button; the run buttons stay live.
        assert dock.banner.isVisible() and "press Install" in dock.banner_text.text()
        assert dock.install_button.isVisible() and dock.install_button.isEnabled()
        assert dock.water_button.isEnabled() and dock.ships_button.isEnabled()
        assert dock.widget().horizontalScrollBar().maximum() == 0
        assert clipped(dock) == []
    finally:
        dock.hide()
        dock.setFloating(False)
    shutil.copy(tmp_path / "dock_298.png", SCREENSHOTS / "dock_298.png")

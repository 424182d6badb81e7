"""The SARMAE dock: collects what the user wants into ``RunParameters`` and emits it.

It validates nothing and runs nothing (the plugin does); it only fills itself from the chosen
layer (band names) and model (its ONNX metadata), so users see what the model expects.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from . import catalogue, deps
from .compat import first
from .core import core
from .layer_io import band_labels, raster_facts
from .messages import guarded
from .params import (
    AREA_CANVAS,
    AREA_LAYER,
    AREA_POLYGONS,
    DETECTOR_CFAR,
    DETECTOR_MODEL,
    OUTPUT_FILES,
    OUTPUT_TEMPORARY,
    RunParameters,
)
from .validation import InputRefused, check_raster, default_bands
from .widgets import caption, describe_layer, double, note, say, select, spin, use_project

_RASTER = first("Qgis.LayerFilter.RasterLayer", "QgsMapLayerProxyModel.Filter.RasterLayer")
_POLYGONS = first("Qgis.LayerFilter.PolygonLayer", "QgsMapLayerProxyModel.Filter.PolygonLayer")
_SAVE_FILE = first("QgsFileWidget.StorageMode.SaveFile")
_GET_FILE = first("QgsFileWidget.StorageMode.GetFile")

_ADJUST_MIN = QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon

MODEL_BUNDLED, MODEL_FILE = "", "file"
#: Spin box values meaning "use the model's value" (shown as their special text).
TILE_DEFAULT, OVERLAP_DEFAULT, THRESHOLD_DEFAULT = 0, -1, 0.0
UNIT_CHOICES = [
    ("from the file", None),
    ("dB", "db"),
    ("linear intensity (σ0, γ0)", "intensity"),
    ("amplitude", "amplitude"),
    ("complex (SLC)", "complex"),
]


class SarmaeDock(QDockWidget):
    """Dock widget with the form, the two run buttons, a progress bar and Cancel.

    Signals:
        run_requested(RunParameters): a button was pressed.
        cancel_requested(): Cancel was pressed.
    """

    run_requested = pyqtSignal(object)
    cancel_requested = pyqtSignal()
    install_requested = pyqtSignal()

    def __init__(self, project: QgsProject | None = None, parent: QWidget | None = None) -> None:
        super().__init__("SARMAE: SAR water and ships", parent)
        self.setObjectName("SarmaeDock")
        self.project = project or QgsProject.instance()
        self._model_info: Any = None
        self._band_boxes: list[QComboBox] = []

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)  # the style's 9-11 px cost a 298 px dock its fit
        layout.addWidget(self._banner())
        layout.addWidget(self._input_group())
        layout.addWidget(self._model_group())
        layout.addWidget(self._parameters_group())
        layout.addWidget(self._area_group())
        layout.addWidget(self._output_group())
        layout.addLayout(self._run_row())
        layout.addStretch(1)
        # Long layer and file names must not widen the dock: combos shrink to a few characters
        # and elide, the form follows the dock's width and scrolls only vertically.
        for combo in body.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(_ADJUST_MIN)
            combo.setMinimumContentsLength(8)
        # QGIS opens docks 298 px wide: a field that does not fit beside its label goes below it.
        for form in body.findChildren(QFormLayout):
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        scroll = QScrollArea()  # a small screen scrolls the form instead of squashing it
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)

        self.layer_combo.layerChanged.connect(self._layer_changed)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.detector_combo.currentIndexChanged.connect(self._model_changed)
        self.model_file.fileChanged.connect(self._model_changed)
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self.output_combo.currentIndexChanged.connect(self._output_changed)
        self.water_button.clicked.connect(lambda: self._emit("water"))
        self.ships_button.clicked.connect(lambda: self._emit("ships"))
        self.flood_button.clicked.connect(lambda: self._emit("flood"))
        self.cancel_button.clicked.connect(self.cancel_requested)
        self._model_changed()
        self._area_changed()
        self._output_changed()
        self.set_running(False)

    # ------------------------------------------------------------------ building
    def _banner(self) -> QFrame:
        """What stops a run before any input is looked at (onnxruntime missing or too old), at
        the top where it is seen, with the button that fixes it; hidden otherwise."""
        self.banner = QFrame()
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setStyleSheet("QFrame { background: #fff3e0; border-radius: 3px; }")
        col = QVBoxLayout(self.banner)  # text above its button: both fit a narrow dock
        self.banner_text = note()
        self.banner_text.setStyleSheet("color: #7a4100; background: transparent;")
        self.install_button = QPushButton("Install…")
        self.install_button.clicked.connect(self.install_requested)
        col.addWidget(self.banner_text)
        col.addWidget(self.install_button, 0, Qt.AlignmentFlag.AlignRight)
        self.banner.hide()
        return self.banner

    def _input_group(self) -> QGroupBox:
        box = QGroupBox("Input")
        form = QFormLayout(box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(_RASTER)
        use_project(self.layer_combo, self.project)
        self.layer_info = note()
        # Map flood: the scene before the event (the SAR layer is the scene after it)
        self.before_combo = self._optional_layer(
            _RASTER,
            "Map flood: the SAR scene before the event (any grid or CRS that overlaps the SAR "
            "layer, which is the scene after it)",
        )
        # Map flood: the analyst's own layers (engine: sarmae_core.inference.products.change)
        self.reference_combo = self._optional_layer(
            _RASTER | _POLYGONS,
            "Map flood: water of normal times (raster, nonzero = water, or polygons), never "
            "flood; without a Before layer, flood is the water model's water minus it",
        )
        self.hand_combo = self._optional_layer(
            _RASTER,
            "Map flood: HAND raster (height above nearest drainage, m); pixels more than 15 m "
            "above it are excluded",
        )
        self.units_combo = QComboBox()
        for label, value in UNIT_CHOICES:
            self.units_combo.addItem(label, value)
        self.band_form = QFormLayout()
        form.addRow("SAR layer", self.layer_combo)
        form.addRow("", self.layer_info)
        form.addRow("Before (flood)", self.before_combo)
        form.addRow("Reference water", self.reference_combo)
        form.addRow("HAND (flood)", self.hand_combo)
        form.addRow("Values are", self.units_combo)
        form.addRow(caption("Bands for the model"))
        form.addRow(self.band_form)
        return box

    def _model_group(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.addItem("Bundled: Water and Ships", MODEL_BUNDLED)
        self.model_combo.addItem("Model file (.onnx)", MODEL_FILE)
        self.model_file = QgsFileWidget()
        self.model_file.setStorageMode(_GET_FILE)
        self.model_file.setFilter("SARMAE ONNX models (*.onnx)")
        self.model_info = note()
        self.detector_combo = QComboBox()
        self.detector_combo.addItem("The model above", DETECTOR_MODEL)
        self.detector_combo.addItem("CA-CFAR (classic, no learning)", DETECTOR_CFAR)
        self.detector_combo.setToolTip(
            "Detect ships with the model, or with cell-averaging CFAR: guard 15 px, background "
            "41 px, PFA 1e-3, exponential clutter; Min. area is its smallest ship. Mask land "
            "with Area ▸ Selected polygons (the sea)"
        )
        form.addRow("Model", self.model_combo)
        form.addRow("File", self.model_file)
        form.addRow("", self.model_info)
        form.addRow("Ship detector", self.detector_combo)
        return box

    def _parameters_group(self) -> QGroupBox:
        box = QGroupBox("Parameters")
        form = QFormLayout(box)
        self.tile_spin = spin(TILE_DEFAULT, 4096, 16, "model's", " px")
        self.overlap_spin = spin(OVERLAP_DEFAULT, 2048, 8, "model's", " px")
        self.batch_spin = spin(1, 256, 1, "", "")
        self.batch_spin.setValue(4)
        # 0.99 at most: the engine refuses thresholds outside (0, 1), where a map is all or none
        self.threshold_spin = double(THRESHOLD_DEFAULT, 0.99, 0.05, 2, "model's", "")
        # Ranges bound the widths Qt gives the boxes: 10 km² and 1 km cover every real use.
        self.min_area_spin = double(0.0, 1e7, 500.0, 0, "", " m²")
        self.simplify_spin = double(0.0, 1000.0, 5.0, 1, "", " m")
        self.tile_spin.setToolTip("Tile side in pixels (model's: what the model was trained on)")
        self.overlap_spin.setToolTip("Overlap between tiles, blended to avoid seams")
        self.threshold_spin.setToolTip(
            "Water probability or ship confidence above which a pixel is water or a peak a ship"
        )
        self.min_area_spin.setToolTip("Water polygons smaller than this are dropped")
        self.simplify_spin.setToolTip("Polygon outlines are simplified to this tolerance")
        rows = [
            ("Tile", self.tile_spin),
            ("Overlap", self.overlap_spin),
            ("Batch", self.batch_spin),
            ("Threshold", self.threshold_spin),
            ("Min. area", self.min_area_spin),
            ("Simplify", self.simplify_spin),
        ]
        for label, widget in rows:  # one pair a row: two pairs side by side need 380 px
            form.addRow(label, widget)
        return box

    def _area_group(self) -> QGroupBox:
        box = QGroupBox("Area")
        form = QFormLayout(box)
        self.area_combo = QComboBox()
        self.area_combo.addItem("Whole layer", AREA_LAYER)
        self.area_combo.addItem("Map canvas extent", AREA_CANVAS)
        self.area_combo.addItem("Selected polygons of a layer", AREA_POLYGONS)
        self.area_layer_combo = QgsMapLayerComboBox()
        self.area_layer_combo.setFilters(_POLYGONS)
        use_project(self.area_layer_combo, self.project)
        form.addRow("Process", self.area_combo)
        form.addRow("Polygons", self.area_layer_combo)
        return box

    def _output_group(self) -> QGroupBox:
        box = QGroupBox("Output")
        form = QFormLayout(box)
        self.output_combo = QComboBox()
        self.output_combo.addItem("Temporary layers", OUTPUT_TEMPORARY)
        self.output_combo.addItem("Files (GeoPackage, GeoTIFF)", OUTPUT_FILES)
        self.output_file = QgsFileWidget()
        self.output_file.setStorageMode(_SAVE_FILE)
        self.output_file.setFilter("GeoPackage (*.gpkg)")
        self.output_file.setToolTip("Polygons or boxes; the water mask goes beside it as .tif")
        self.mask_check = QCheckBox("Add water mask raster")
        self.overwrite_check = QCheckBox("Overwrite files")
        form.addRow("Results", self.output_combo)
        form.addRow("File", self.output_file)
        form.addRow(self.mask_check)  # the whole row: no empty label column to squeeze it
        form.addRow(self.overwrite_check)
        return box

    def _run_row(self) -> QVBoxLayout:
        col = QVBoxLayout()
        buttons = QHBoxLayout()
        self.water_button = QPushButton("Segment water")
        self.ships_button = QPushButton("Detect ships")
        self.flood_button = QPushButton("Map flood")
        for b in (self.water_button, self.ships_button):
            b.setMinimumHeight(30)
            buttons.addWidget(b)
        # a third button does not fit a 298 px dock beside the others: its own row
        self.flood_button.setMinimumHeight(30)
        flood_row = QHBoxLayout()
        flood_row.addWidget(self.flood_button)
        progress = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.cancel_button)
        self.status = note()
        col.addLayout(buttons)
        col.addLayout(flood_row)
        col.addLayout(progress)
        col.addWidget(self.status)
        return col

    # ------------------------------------------------------------------ reacting
    @guarded
    def _layer_changed(self, *_: Any) -> None:
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer):
            say(self.layer_info, "Add a SAR raster to the project, then choose it here.", False)
            self._rebuild_bands(None)
            return
        facts = raster_facts(layer)
        try:
            check_raster(facts)
            say(self.layer_info, describe_layer(layer, facts), True)
        except InputRefused as exc:
            say(self.layer_info, str(exc), False)
        self._rebuild_bands(facts)

    @guarded
    def _model_changed(self, *_: Any) -> None:
        from_file = self.model_combo.currentData() == MODEL_FILE
        self.model_file.setEnabled(from_file)
        self._model_info = None
        water_ok = ships_ok = flood_ok = False
        missing = deps.missing_modules()
        if missing:  # models cannot be read yet; a click offers the install (banner on top)
            if from_file and self.model_file.filePath().strip():
                say(self.model_info, "The model is read once onnxruntime is installed.", True)
                water_ok = ships_ok = flood_ok = True
            elif from_file:
                say(self.model_info, "Choose a .onnx model exported with `sarmae export`.", False)
            else:
                found = catalogue.bundled_models()
                water_ok, ships_ok = "water" in found, "ships" in found
                flood_ok = "flood" in found
                say(self.model_info, "Bundled: " + (", ".join(found) or "none"), bool(found))
        elif from_file:
            path = self.model_file.filePath().strip()
            if not path:
                say(self.model_info, "Choose a .onnx model exported with `sarmae export`.", False)
            else:
                try:
                    info = catalogue.model_info(path)
                except InputRefused as exc:
                    say(self.model_info, str(exc), False)
                else:
                    self._model_info = info
                    self._fill_from_model(info)
                    two_dates = bool(getattr(info, "dates", None))
                    water_ok = info.task == "segmentation" and not two_dates
                    flood_ok = info.task == "segmentation" and two_dates
                    ships_ok = info.task == "detection"
                    say(self.model_info, catalogue.describe(info), True)
        else:
            found = catalogue.bundled_models()
            water_ok, ships_ok = "water" in found, "ships" in found
            flood_ok = "flood" in found
            parts = [
                f"{name.title()}: {'installed' if job in found else 'not installed'}"
                + catalogue.variants_text(job)
                for job, name in catalogue.BUNDLED.items()
            ]
            text = " · ".join(parts)
            if not found:
                text += ". This build has no bundled models: choose a model file above."
            say(self.model_info, text, bool(found))
            if found:
                try:
                    self._model_info = catalogue.model_info(found.get("water") or found["ships"])
                except InputRefused as exc:
                    say(self.model_info, str(exc), False)
                self._reset_model_defaults()
        cfar = self.detector_combo.currentData() == DETECTOR_CFAR
        self._can = {"water": water_ok, "ships": ships_ok or cfar, "flood": flood_ok}
        self._update_buttons()
        self._layer_changed()

    def _fill_from_model(self, info: Any) -> None:
        """A model file's own tile, overlap and threshold become the form's values."""
        self.tile_spin.setValue(int(info.tile_size))
        self.overlap_spin.setValue(int(info.tile_overlap))
        seg = info.task == "segmentation"
        self.threshold_spin.setValue(float(info.seg_threshold if seg else info.det_confidence))

    def _reset_model_defaults(self) -> None:
        self.tile_spin.setValue(TILE_DEFAULT)
        self.overlap_spin.setValue(OVERLAP_DEFAULT)
        self.threshold_spin.setValue(THRESHOLD_DEFAULT)

    def _rebuild_bands(self, facts: Any) -> None:
        while self.band_form.rowCount():
            self.band_form.removeRow(0)
        self._band_boxes = []
        info = self._model_info
        if info is None or facts is None:
            return
        if getattr(info, "dates", None):  # a two-date model: each scene gives its own bands
            info = core("inference.scene.source").date_info(info, "after")
        if self.model_combo.currentData() != MODEL_FILE and info.task == "segmentation":
            # the bundled Water model for this layer, by the engine's rule
            path = catalogue.bundled_for_layer("water", facts.path)
            if path is not None:
                info = catalogue.model_info(path)
        labels = band_labels(facts)
        try:
            suggested = default_bands(facts, info.polarisations)
        except Exception:
            suggested = [None] * len(info.polarisations)
        for pol, band in zip(info.polarisations, suggested, strict=True):
            combo = QComboBox()
            combo.addItem("by band name", None)
            for i, label in enumerate(labels):
                combo.addItem(label, i + 1)
            if band is not None:
                combo.setCurrentIndex(band)
            self._band_boxes.append(combo)
            self.band_form.addRow(f"{pol} ←", combo)

    def _area_changed(self, *_: Any) -> None:
        self.area_layer_combo.setEnabled(self.area_combo.currentData() == AREA_POLYGONS)

    def _output_changed(self, *_: Any) -> None:
        self.output_file.setEnabled(self.output_combo.currentData() == OUTPUT_FILES)

    def _update_buttons(self) -> None:
        running = getattr(self, "_running", False)
        can = getattr(self, "_can", {"water": False, "ships": False, "flood": False})
        self.water_button.setEnabled(can["water"] and not running)
        self.ships_button.setEnabled(can["ships"] and not running)
        self.flood_button.setEnabled(can["flood"] and not running)
        self.flood_button.setToolTip(
            "" if can["flood"] else "Needs a two-date flood model (bundled, or a model file)"
        )
        self.water_button.setToolTip("" if can["water"] else "Needs a segmentation model")
        self.ships_button.setToolTip(
            "" if can["ships"] else "Needs a detection model (or Ship detector: CA-CFAR)"
        )

    def _optional_layer(self, filters: Any, tooltip: str) -> QgsMapLayerComboBox:
        """A project layer chooser that starts empty (an optional input of Map flood)."""
        combo = QgsMapLayerComboBox()
        combo.setFilters(filters)
        combo.setAllowEmptyLayer(True)
        use_project(combo, self.project)
        combo.setLayer(None)
        combo.setToolTip(tooltip)
        return combo

    @guarded
    def _emit(self, job: str) -> None:
        self.run_requested.emit(self.parameters(job))

    # ------------------------------------------------------------------ public
    def parameters(self, job: str = "water") -> RunParameters:
        """What the form says, for ``job``."""
        layer = self.layer_combo.currentLayer()
        before = self.before_combo.currentLayer()
        reference = self.reference_combo.currentLayer()
        hand = self.hand_combo.currentLayer()
        area_layer = self.area_layer_combo.currentLayer()
        bands = [c.currentData() for c in self._band_boxes]
        model = (
            self.model_file.filePath().strip()
            if self.model_combo.currentData() == MODEL_FILE
            else ""
        )
        return RunParameters(
            job=job,
            layer_id=layer.id() if layer is not None else "",
            before_layer_id=before.id() if before is not None else "",
            reference_layer_id=reference.id() if reference is not None else "",
            hand_layer_id=hand.id() if hand is not None else "",
            model=model,
            detector=self.detector_combo.currentData(),
            bands=tuple(bands) if bands and all(b is not None for b in bands) else None,
            units=self.units_combo.currentData(),
            tile=self.tile_spin.value() or None,
            overlap=None if self.overlap_spin.value() < 0 else self.overlap_spin.value(),
            batch_size=self.batch_spin.value(),
            threshold=self.threshold_spin.value() or None,
            min_area_m2=self.min_area_spin.value(),
            simplify_m=self.simplify_spin.value(),
            area=self.area_combo.currentData(),
            area_layer_id=area_layer.id() if area_layer is not None else "",
            output=self.output_combo.currentData(),
            output_path=self.output_file.filePath().strip(),
            add_mask=self.mask_check.isChecked(),
            overwrite=self.overwrite_check.isChecked(),
        )

    def set_parameters(self, p: RunParameters) -> None:
        """Show ``p`` (restored settings); layers that are not in the project are skipped."""
        if p.layer_id and self.project.mapLayer(p.layer_id) is not None:
            self.layer_combo.setLayer(self.project.mapLayer(p.layer_id))
        if p.before_layer_id and self.project.mapLayer(p.before_layer_id) is not None:
            self.before_combo.setLayer(self.project.mapLayer(p.before_layer_id))
        for combo, layer_id in ((self.reference_combo, p.reference_layer_id),
                                (self.hand_combo, p.hand_layer_id)):  # fmt: skip
            if layer_id and self.project.mapLayer(layer_id) is not None:
                combo.setLayer(self.project.mapLayer(layer_id))
        if p.area_layer_id and self.project.mapLayer(p.area_layer_id) is not None:
            self.area_layer_combo.setLayer(self.project.mapLayer(p.area_layer_id))
        select(self.model_combo, MODEL_FILE if p.model else MODEL_BUNDLED)
        self.model_file.setFilePath(p.model)
        select(self.detector_combo, p.detector)
        self._model_changed()
        select(self.units_combo, p.units)
        self.tile_spin.setValue(p.tile or TILE_DEFAULT)
        self.overlap_spin.setValue(OVERLAP_DEFAULT if p.overlap is None else p.overlap)
        self.batch_spin.setValue(p.batch_size)
        self.threshold_spin.setValue(p.threshold or THRESHOLD_DEFAULT)
        self.min_area_spin.setValue(p.min_area_m2)
        self.simplify_spin.setValue(p.simplify_m)
        select(self.area_combo, p.area)
        select(self.output_combo, p.output)
        self.output_file.setFilePath(p.output_path)
        self.mask_check.setChecked(p.add_mask)
        self.overwrite_check.setChecked(p.overwrite)
        if p.bands and len(p.bands) == len(self._band_boxes):
            for combo, band in zip(self._band_boxes, p.bands, strict=True):
                select(combo, band)

    def set_running(self, running: bool) -> None:
        """Buttons off and Cancel on while a run goes, and the other way round."""
        self._running = running
        self._update_buttons()
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)

    def set_progress(self, percent: float) -> None:
        self.progress.setValue(int(percent))

    def show_status(self, text: str, ok: bool = True) -> None:
        say(self.status, text, ok)

    def show_banner(self, text: str | None) -> None:
        """The banner at the top with ``text`` and its Install button; None hides it."""
        self.banner_text.setText(text or "")
        self.banner.setVisible(bool(text))

    def refresh(self) -> None:
        """Read the models again (after onnxruntime was installed)."""
        self._model_changed()

"""The plugin object QGIS loads: menu and toolbar entry, dock, runs, Processing provider.

Flow (Deepness' shape): the dock emits ``RunParameters``; :meth:`SarmaePlugin.start` checks the
Python packages, validates layer and model (``request.build_request``) and starts an
``InferenceTask``; its outcome comes back on the main thread, where layers are added and the
message bar says what was found. Every slot is ``guarded``: errors become messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsProject, QgsTask
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QMessageBox

try:  # Qt6 (QGIS 4) moved QAction to QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

from . import deps, settings
from .compat import MSG_CRITICAL, MSG_INFO, MSG_SUCCESS, MSG_WARNING
from .messages import guarded, log, push
from .params import JOB_TITLE, RunParameters
from .request import build_request
from .task import InferenceTask, TaskOutcome
from .validation import InputRefused

ICON = Path(__file__).parent / "icons" / "sarmae.svg"
MENU = "&SARMAE"
_YES = QMessageBox.StandardButton.Yes
_NO = QMessageBox.StandardButton.No


class SarmaePlugin:
    """Created by ``classFactory``; ``iface`` is None under ``qgis_process``."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Any = None
        self.dock: Any = None
        self.action: QAction | None = None
        self.task: InferenceTask | None = None
        self.last_outcome: TaskOutcome | None = None
        self._install_task: QgsTask | None = None

    # ------------------------------------------------------------------ QGIS hooks
    def initProcessing(self) -> None:
        """Register the SARMAE Processing provider (also what ``qgis_process`` calls)."""
        if self.provider is None:
            from .processing.provider import SarmaeProvider

            self.provider = SarmaeProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        from .dock import SarmaeDock

        self.initProcessing()
        self.dock = SarmaeDock(QgsProject.instance(), self.iface.mainWindow())
        self.dock.set_parameters(settings.load())
        self.dock.run_requested.connect(self.start)
        self.dock.cancel_requested.connect(self.cancel)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.install_requested.connect(lambda: self.install(deps.missing_modules()))
        self.dock.hide()
        self.check_dependencies()

        self.action = QAction(
            QIcon(str(ICON)), "SARMAE: SAR water and ships", self.iface.mainWindow()
        )
        self.action.setCheckable(True)
        self.action.toggled.connect(self.dock.setVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addToolBarIcon(self.action)

    def unload(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.dock is not None:
            settings.save(self.dock.parameters())
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # ------------------------------------------------------------------ runs
    @guarded
    def start(self, params: RunParameters, background: bool = True) -> InferenceTask | None:
        """Validate ``params`` and run them in a ``QgsTask`` (in this thread if not ``background``).

        Returns the task, or None when the run was refused (the reason is in the message bar).
        """
        if self.task is not None:
            self._refuse("a run is in progress; wait for it or press Cancel")
            return None
        missing = deps.missing_modules()
        if missing:  # the click offers the install, then runs what was asked
            self.install(missing, then=params)
            return None
        try:
            canvas = self.iface.mapCanvas() if self.iface is not None else None
            request = build_request(params, QgsProject.instance(), canvas)
        except InputRefused as exc:
            self._refuse(str(exc))
            return None
        settings.save(params)
        task = InferenceTask(request, self._finished)
        self.task = task
        if self.dock is not None:
            self.dock.set_running(True)
            self.dock.show_status(f"{JOB_TITLE[params.job]} on {request.input_name}…")
            task.progressChanged.connect(self.dock.set_progress)
        log(
            f"{JOB_TITLE[params.job]}: {request.input_name} ({request.raster}) with "
            f"{request.model} -> {request.output}"
        )
        if background:
            QgsApplication.taskManager().addTask(task)
        else:
            task.finished(task.run())
        return task

    @guarded
    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    @guarded
    def _finished(self, outcome: TaskOutcome) -> None:
        from .results import add_result_layers, summary_message

        self.task = None
        self.last_outcome = outcome
        title = JOB_TITLE[outcome.request.job]
        if self.dock is not None:
            self.dock.set_running(False)
        if outcome.cancelled:
            if self.dock is not None:
                self.dock.set_progress(0)  # nothing was made: the bar does not stay at 15 %
            text = f"{title} cancelled; no layer and no file were left behind"
            push(self.iface, text, MSG_INFO)
            self._status(text, True)
            return
        if outcome.error is not None:
            push(self.iface, f"{title} failed: {outcome.error}", MSG_CRITICAL, outcome.details)
            self._status(f"Failed: {outcome.error}", False)
            return
        add_result_layers(outcome, QgsProject.instance())
        text = summary_message(outcome)
        notes = "\n".join(f"  note: {n}" for n in outcome.result.notes)
        log(f"{text}\n{notes}".rstrip())
        push(self.iface, text, MSG_SUCCESS)
        self._status(text, True)

    def _refuse(self, text: str) -> None:
        push(self.iface, text, MSG_WARNING)
        self._status(text, False)

    def _status(self, text: str, ok: bool) -> None:
        if self.dock is not None:
            self.dock.show_status(text, ok)

    # ------------------------------------------------------------------ dependencies
    def check_dependencies(self) -> bool:
        """Banner at the top of the dock when onnxruntime is missing or too old for the bundled
        models (an expected condition: a warning line in the log, no traceback)."""
        from .catalogue import bundled_models

        missing = deps.missing_modules()
        text = (
            deps.missing_message(missing)
            if missing
            else deps.ir_problem(list(bundled_models().values()))
        )
        if self.dock is not None:
            self.dock.show_banner(text)
        if text:
            log(text, MSG_WARNING)
        return text is None

    def offer_install(self, modules: list[str]) -> None:
        """Say what is missing, and offer (never force) the install: the dock's banner."""
        text = deps.missing_message(modules)
        log(text, MSG_WARNING)
        if self.dock is not None:
            self.dock.show_banner(text)

    @guarded
    def install(self, modules: list[str], then: RunParameters | None = None) -> bool:
        """Ask, then pip-install ``modules`` into the plugin's folder in a background task;
        once installed, run ``then`` (what the click asked for). False if declined."""
        modules = modules or list(deps.REQUIREMENTS)  # the banner's button after an IR problem
        plan = deps.install_plan(modules)
        parent = self.iface.mainWindow() if self.iface is not None else None
        answer = QMessageBox.question(
            parent,
            "SARMAE: install Python packages?",
            f"SARMAE needs {', '.join(modules)}. It will run this command with QGIS's Python "
            f"(about 20 MB from the Python Package Index):\n\n{plan.command}\n\n"
            "It installs into SARMAE's own folder and keeps QGIS's numpy as it is. Install now?",
            _YES | _NO,
            _NO,
        )
        if answer != _YES:
            log(f"installation declined; to install later run:\n{plan.command}")
            return False
        self._status(f"Installing {', '.join(modules)}…", True)

        def done(exception: Exception | None, result: Any = None) -> None:
            self._install_task = None
            ok, output = result if result else (False, str(exception))
            if not ok:
                push(self.iface, deps.pip_failure(output), MSG_CRITICAL, output)
                self._status(deps.pip_failure(output), False)
                return
            deps.activate()
            log(output)
            if self.dock is not None:
                self.dock.refresh()
            if not self.check_dependencies():  # installed, yet still not usable: restart
                push(self.iface, "installed; restart QGIS to use it", MSG_WARNING)
                return
            push(self.iface, f"{', '.join(modules)} installed", MSG_SUCCESS)
            self._status(f"{', '.join(modules)} installed", True)
            if then is not None:
                self.start(then)

        self._install_task = QgsTask.fromFunction(
            "SARMAE: installing Python packages",
            lambda _task: deps.run_install(plan),
            on_finished=done,
        )
        QgsApplication.taskManager().addTask(self._install_task)
        return True

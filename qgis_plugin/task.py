"""The background run: a ``QgsTask`` around ``sarmae_core.inference.predict``.

``run()`` executes in a worker thread of QGIS's task manager and must never raise: it keeps the
result, or the error with its traceback, and returns True/False. ``finished()`` runs on the main
thread, where the caller's callback adds layers and reports. Progress goes to ``setProgress``
(thread-safe); cancelling is read through ``isCanceled`` between tiles, so Cancel stops a run
within a tile or two and the engine removes whatever it had started writing.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import QgsTask

from .compat import TASK_CAN_CANCEL
from .core import core
from .params import JOB_TITLE, InferenceRequest
from .request import detector


@dataclass
class TaskOutcome:
    """How a run ended.

    Attributes:
        request: what was run.
        result: ``PredictionResult`` when it succeeded, else None.
        cancelled: stopped by the user.
        error: one-line message for the message bar (None on success or cancel).
        details: the full error and traceback for the log panel.
        seconds: wall time.
    """

    request: InferenceRequest
    result: Any = None
    cancelled: bool = False
    error: str | None = None
    details: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None


def run_inference(
    request: InferenceRequest,
    progress: Callable[[float], Any] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> TaskOutcome:
    """Run ``request`` with the engine; never raises (a worker thread must not)."""
    outcome = TaskOutcome(request)
    start = time.perf_counter()
    try:
        predict = core("inference.predict").predict
        outcome.result = predict(
            request.raster,
            detector(request.model, request.cfar),  # CA-CFAR built here from plain settings
            request.output,
            request.options,
            products=request.products,
            progress=progress,
            cancel=cancelled,
        )
    except Exception as exc:
        if isinstance(exc, core("errors").CancelledError) or (cancelled and cancelled()):
            outcome.cancelled = True
        else:
            outcome.error = str(exc) or type(exc).__name__
            outcome.details = traceback.format_exc()
        _remove_temporary_folder(request)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _remove_temporary_folder(request: InferenceRequest) -> None:
    """The run's own temporary folder goes too: a cancelled run leaves nothing behind."""
    if request.temporary:
        shutil.rmtree(Path(request.output).parent, ignore_errors=True)


class InferenceTask(QgsTask):
    """A cancellable background run that hands a :class:`TaskOutcome` to ``on_finished``.

    Args:
        request: the validated run.
        on_finished: called on the main thread with the outcome.
    """

    def __init__(
        self, request: InferenceRequest, on_finished: Callable[[TaskOutcome], None]
    ) -> None:
        super().__init__(
            f"SARMAE: {JOB_TITLE[request.job]} on {request.input_name}", TASK_CAN_CANCEL
        )
        self.request = request
        self.on_finished = on_finished
        self.outcome: TaskOutcome | None = None

    def run(self) -> bool:
        self.outcome = run_inference(self.request, self.setProgress, self.isCanceled)
        # A cancel the user asked for ends the task normally: returning False would make QGIS
        # announce "Task failed" for it.
        return self.outcome.ok or self.outcome.cancelled

    def finished(self, result: bool) -> None:
        outcome = self.outcome or TaskOutcome(self.request, cancelled=True)
        if self.isCanceled() and not outcome.ok:
            outcome.cancelled, outcome.error = True, None
        self.on_finished(outcome)

"""Reporting: short messages in the message bar, details in the log panel, never a traceback
dialog (QGIS shows one for any exception that escapes a slot)."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from qgis.core import QgsMessageLog

from .compat import MSG_CRITICAL, MSG_INFO, MSG_WARNING

#: Tab of the log panel (View ▸ Panels ▸ Log Messages) the plugin writes to.
LOG_TAG = "SARMAE"
TITLE = "SARMAE"

F = TypeVar("F", bound=Callable[..., Any])


def log(text: str, level: Any = MSG_INFO) -> None:
    QgsMessageLog.logMessage(text, LOG_TAG, level)


def push(
    iface: Any, text: str, level: Any = MSG_INFO, details: str = "", duration: int = -1
) -> None:
    """``text`` in the message bar (or the log without a GUI); ``details`` in the log panel."""
    log(f"{text}\n{details}".strip(), level)
    if iface is None:
        return
    if details:
        text = f"{text} (details in the {LOG_TAG} log panel)"
    iface.messageBar().pushMessage(TITLE, text, level, duration)


def guarded(method: F) -> F:
    """Run a slot so that any error becomes a message bar entry and a log entry.

    Uses the instance's ``iface`` (when it has one) and ``show_status`` (the dock).
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            text = f"unexpected error: {exc}"
            push(getattr(self, "iface", None), text, MSG_CRITICAL, traceback.format_exc())
            if hasattr(self, "show_status"):  # the dock says it where the user looks
                self.show_status(text, False)
            return None

    return wrapper  # type: ignore[return-value]


__all__ = ["LOG_TAG", "MSG_CRITICAL", "MSG_INFO", "MSG_WARNING", "guarded", "log", "push"]

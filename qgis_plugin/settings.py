"""The dock's choices, kept across QGIS restarts in the user profile (``QgsSettings``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from qgis.core import QgsSettings

from .params import RunParameters

KEY = "sarmae/dock/parameters"


def save(params: RunParameters, settings: QgsSettings | None = None) -> None:
    """Store ``params`` as one JSON value: types survive the INI file (bools, None, tuples)."""
    s = settings if settings is not None else QgsSettings()
    s.setValue(KEY, json.dumps(dataclasses.asdict(params)))
    s.sync()


def load(settings: QgsSettings | None = None) -> RunParameters:
    """The stored parameters; defaults for anything missing or unreadable."""
    s = settings if settings is not None else QgsSettings()
    raw = s.value(KEY, "")
    try:
        data: dict[str, Any] = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        data = {}
    known = {f.name for f in dataclasses.fields(RunParameters)}
    values = {k: v for k, v in data.items() if k in known}
    if values.get("bands") is not None:
        values["bands"] = tuple(int(b) for b in values["bands"])
    try:
        return RunParameters(**values)
    except TypeError:
        return RunParameters()

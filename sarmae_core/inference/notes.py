"""What a run assumed or changed on its own, said out loud (Deepness #128, GeoDeep #10).

Every assumption (units guessed, bands taken in file order, pixels resampled, no CRS, GPU found
but not used) is both a Python warning, so scripts see it, and a line of the run's result, so
the QGIS plugin and the CLI can show it next to the output.
"""

from __future__ import annotations

import logging
import warnings

log = logging.getLogger("sarmae_core.inference")


class InferenceWarning(UserWarning):
    """An assumption or adjustment made by an inference run; the message says how to avoid it."""


class Notes(list[str]):
    """Lines for the result, each also issued as an :class:`InferenceWarning` or logged."""

    def warn(self, message: str) -> None:
        """Something the user should know changed their result."""
        self.append(message)
        warnings.warn(message, InferenceWarning, stacklevel=3)

    def info(self, message: str) -> None:
        """Something worth recording that needs no action (e.g. the provider that ran)."""
        self.append(message)
        log.info(message)


class PrefixedNotes(Notes):
    """Notes about one input of several (e.g. ``before scene: ...``), added to ``notes``."""

    def __init__(self, notes: Notes, prefix: str) -> None:
        super().__init__()
        self._notes, self._prefix = notes, prefix

    def warn(self, message: str) -> None:
        self._notes.warn(f"{self._prefix}{message}")

    def info(self, message: str) -> None:
        self._notes.info(f"{self._prefix}{message}")

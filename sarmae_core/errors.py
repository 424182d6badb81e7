"""Exceptions raised by sarmae.

One root, :class:`SarmaeError`; each subclass also derives from the matching builtin so callers
that already catch ``ValueError`` or ``OSError`` keep working. Messages say what was wrong and
what to do next.
"""

from __future__ import annotations


class SarmaeError(Exception):
    """Root of every error sarmae raises on purpose."""


class InputError(SarmaeError, ValueError):
    """An image, tensor or raster that the model cannot take as it is."""


class ConfigError(SarmaeError, ValueError):
    """An unknown preset, option or configuration key, or values that contradict each other."""


class CheckpointError(SarmaeError, ValueError):
    """A checkpoint that cannot be read or does not fit the model asked for."""


class RasterError(SarmaeError, OSError):
    """A raster or vector file that cannot be read or written."""


class OutputExistsError(RasterError, FileExistsError):
    """An output file exists and the run was not allowed to replace it."""


class CancelledError(SarmaeError):
    """A run stopped by the user; whatever it had started writing was removed."""

"""Back to the input's grid: model-grid rows resampled onto the input's pixels as they stream.

When the input's pixel size differs from the model's, tiles are read resampled to the model's
resolution (:class:`~sarmae_core.inference.scene.source.SarSource`); the outputs, though, belong on
the input's grid (its transform, size and nodata), so that the mask lies on the scene pixel for
pixel. :class:`ToInputGrid` sits between the blender and the product sink: it keeps only the
model rows the next output rows need (two chunks at most), interpolates the probabilities
bilinearly, and marks as valid only input pixels that hold data and whose nearest model pixel
was valid (inside the area of interest). The class map is made from these probabilities, so the
class and probability rasters agree pixel for pixel and edges are not blocky.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..geo.georef import Transform
from .blending import Sink


@dataclass(frozen=True)
class OutputWindow:
    """The input pixels whose centres fall inside a region of the model grid.

    Attributes:
        row, col, height, width: the window of the input's grid.
        transform: its transform.
    """

    row: int
    col: int
    height: int
    width: int
    transform: Transform

    @classmethod
    def covering(
        cls,
        region: tuple[int, int, int, int],
        scale: tuple[float, float],
        input_transform: Transform,
        input_shape: tuple[int, int],
    ) -> OutputWindow:
        """Window for ``region`` (row, col, height, width of the model grid), where one model
        pixel spans ``scale`` = (rows, cols) input pixels."""
        r0, c0, h, w = region
        sy, sx = scale
        row0 = min(max(0, math.ceil(r0 * sy - 0.5)), input_shape[0] - 1)
        col0 = min(max(0, math.ceil(c0 * sx - 0.5)), input_shape[1] - 1)
        row1 = max(row0 + 1, min(input_shape[0], math.ceil((r0 + h) * sy - 0.5)))
        col1 = max(col0 + 1, min(input_shape[1], math.ceil((c0 + w) * sx - 0.5)))
        t = input_transform.then(Transform.translation(col0, row0))
        return cls(row0, col0, row1 - row0, col1 - col0, t)


def _axis(start: int, n: int, scale: float, offset: int, size: int) -> tuple[np.ndarray, ...]:
    """For output pixels ``start .. start + n`` of one axis: the model pixels below and above
    each centre (clamped), the bilinear weight of the upper one, and the nearest model pixel."""
    pos = (np.arange(start, start + n) + 0.5) / scale - 0.5 - offset  # model pixel coordinates
    lo = np.floor(pos)
    weight = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int64)
    nearest = np.clip(np.floor(pos + 0.5).astype(np.int64), 0, size - 1)
    return np.clip(lo, 0, size - 1), np.clip(lo + 1, 0, size - 1), weight, nearest


class ToInputGrid:
    """A blender sink that resamples model-grid rows to the input's grid for ``sink``.

    Args:
        sink: receives ``(output row, probabilities [K, n, W], valid [n, W])`` on the window.
        region_shape: (height, width) of the region swept on the model grid.
        region_origin: (row, col) of that region in the model grid.
        scale: input pixels per model pixel, (rows, cols).
        window: the output window (:meth:`OutputWindow.covering`).
        input_valid: validity of a window of the input's grid ``(row, col, height, width)``.
        block: output rows handed on at a time (the GeoTIFF block height).
    """

    def __init__(
        self,
        sink: Sink,
        region_shape: tuple[int, int],
        region_origin: tuple[int, int],
        scale: tuple[float, float],
        window: OutputWindow,
        input_valid: Callable[[int, int, int, int], np.ndarray],
        block: int,
    ) -> None:
        self.sink = sink
        self.window = window
        self.input_valid = input_valid
        self.block = block
        self._height = region_shape[0]
        self._scale_y, self._origin_y = scale[0], region_origin[0]
        self._cols = _axis(window.col, window.width, scale[1], region_origin[1], region_shape[1])
        self._next = 0  # next output row (window offset) to hand on
        self._start = 0  # model row of the buffer's first row
        self._probs: np.ndarray | None = None
        self._valid: np.ndarray | None = None
        self.seconds = 0.0  # time spent resampling (the sink's own time excluded)

    def _rows(self, start: int, n: int) -> tuple[np.ndarray, ...]:
        return _axis(self.window.row + start, n, self._scale_y, self._origin_y, self._height)

    def __call__(self, row: int, probs: np.ndarray, valid: np.ndarray) -> None:
        t = time.perf_counter()
        if self._probs is None:
            self._probs, self._valid = probs.copy(), valid.copy()
            self._start = row
        else:
            self._probs = np.concatenate([self._probs, probs], axis=1)
            self._valid = np.concatenate([self._valid, valid], axis=0)
        available = row + probs.shape[1]  # model rows [self._start, available) are buffered
        last = available >= self._height
        while self._next < self.window.height:
            n = min(self.block, self.window.height - self._next)
            _, hi, _, _ = self._rows(self._next + n - 1, 1)
            if not last and hi[0] >= available:
                break  # the last of these rows needs a model row not seen yet
            self._emit(n)
        if self._next < self.window.height:  # drop model rows no later output row needs
            lo, _, _, _ = self._rows(self._next, 1)
            keep = max(0, int(lo[0]) - self._start)
            self._probs, self._valid = self._probs[:, keep:], self._valid[keep:]
            self._start += keep
        self.seconds += time.perf_counter() - t

    def _emit(self, n: int) -> None:
        y0, y1, wy, ny = self._rows(self._next, n)
        y0, y1, ny = y0 - self._start, y1 - self._start, ny - self._start
        x0, x1, wx, nx = self._cols
        p = self._probs
        # Separable: rows first on the model's width (a quarter of the output at 2x), then one
        # pass over the output's columns; gathering all four corners at output size cost twice
        # as much and was the largest step outside the model at GRD size (benchmarks/scene.py).
        wy = wy[None, :, None]
        rows = p[:, y0] * (1 - wy)
        rows += p[:, y1] * wy
        out = rows[:, :, x0] * (1 - wx)
        out += rows[:, :, x1] * wx
        gap = ~np.isfinite(out)  # a neighbour no tile covered: the nearest value instead
        if gap.any():
            nearest = p[:, ny][:, :, nx]
            out[gap] = nearest[gap]
        w = self.window
        valid = self._valid[ny][:, nx] & self.input_valid(w.row + self._next, w.col, n, w.width)
        t = time.perf_counter()
        self.sink(self._next, out.astype(np.float32, copy=False), valid)
        self.seconds -= time.perf_counter() - t
        self._next += n

"""Polygons traced strip by strip as the class map is made, regions joined across the seams.

The sweep hands finished rows down the grid in order. Every few hundred rows
(:data:`STRIP_PIXELS`), the strip is traced (``GDALPolygonize`` on an in-memory array,
4-connected as on a whole raster) in a worker thread while the model works on the next tiles,
instead of tracing a whole scene's mask file after the sweep. A region that does not reach the
strip's last row is complete and goes out at once. One that does waits, as a piece, for the
next strip: the pixels on either side of the seam (the same class in the last row of one strip
and the first of the next) say which pieces are one region, by a union-find over the pieces of
the two strips, and the pieces of a region are joined once it stops at a strip's last row, by
cancelling the seam edges they share (:mod:`.seams`; GEOS's union took twice as long). The
result is the whole raster's polygons, vertex for vertex.

Memory follows the strip and the regions that cross the current seam, not the scene. A region
that runs on over many strips keeps its pieces until it ends, up to :data:`MAX_REGION_VERTICES`:
beyond that, its pieces are written as traced, cut along the strip edges, and counted
(``parts_cut``; the run says so in its notes).

With an area filter, the strips are sieved first (:mod:`.sieve`) with the rows of context that
make the result equal to sieving the whole raster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..geo.geometry import Polygon
from ..io.raster_io import RasterIO
from .seams import join_polygons, meeting_rows
from .sieve import sieve_window

#: Pixels traced at a time: a strip is this many pixels' worth of rows (within
#: :data:`MIN_STRIP_ROWS` .. :data:`MAX_STRIP_ROWS`). rasterio's trace cannot be stopped
#: midway (GDAL's bindings stop at a cancel through the progress callback), so a strip must
#: take well under a second (about 0.3 s on a smooth water map, 0.8 s on a map of speckle)
#: for a cancel to be seen within a second. Strips grown to 16M pixels on maps of few regions
#: traced a 25,000 px wide water map 16 % faster, but peak memory at 16k / 4k went from 1.23x
#: to 1.40x (1.55x on a fragmented map; the target is 1.3x), so they stay at this size.
STRIP_PIXELS = 4_000_000
MIN_STRIP_ROWS, MAX_STRIP_ROWS = 64, 1024

#: Vertices a region may hold while it goes on down the map (about 15 MB of rings). A region
#: that large is a sea with tens of thousands of speckle holes, past what a GIS draws smoothly
#: as one feature; it is written in parts cut along strip edges, so that memory stays bounded.
MAX_REGION_VERTICES = 500_000

#: What receives each finished region: ``(polygon in pixel coordinates, class value)``.
Emit = Callable[[Polygon, int], None]


@dataclass
class _Open:
    """The regions that reach the last row traced so far."""

    pieces: dict[int, list[Polygon]] = field(default_factory=dict)  # region id -> its pieces
    sizes: dict[int, int] = field(default_factory=dict)  # region id -> vertices held
    values: dict[int, int] = field(default_factory=dict)  # region id -> class value
    cut: set[int] = field(default_factory=set)  # regions written strip by strip (too large)
    below: np.ndarray | None = None  # region id of each pixel of the last row, -1 none
    below_class: np.ndarray | None = None  # the last row's classes
    next_id: int = 0


class StripTracer:
    """Takes class rows in order (``tracer(row, classes)``) and emits each region's polygon.

    Args:
        fileio: the IO backend that traces and joins polygons.
        width, height: the grid.
        emit: receives each finished polygon (pixel coordinates: x column, y row) and value.
        check_cancel: raises :class:`~sarmae_core.errors.CancelledError` to stop.
        remove_px, fill_px: sieve thresholds in pixels (:func:`.sieve.sieve_window`; 0: none).
        strip_rows: rows traced at a time (None: :data:`STRIP_PIXELS` worth).
        max_vertices: vertices one region may hold while it goes on; beyond, its pieces are
            written as traced, cut along the strip edges, and so is the rest of it.
    """

    def __init__(
        self,
        fileio: RasterIO,
        width: int,
        height: int,
        emit: Emit,
        check_cancel: Callable[[], None],
        remove_px: int = 0,
        fill_px: int = 0,
        strip_rows: int | None = None,
        max_vertices: int = MAX_REGION_VERTICES,
    ) -> None:
        self.fileio = fileio
        self.width, self.height = width, height
        self.emit = emit
        self.check_cancel = check_cancel
        self.remove_px, self.fill_px = remove_px, fill_px
        # a region below the sieve's thresholds lies within that many rows of any of its
        # pixels: so much context above and below a strip sieves it as the whole raster
        self.margin = remove_px + fill_px
        self.strip_rows = strip_rows or min(
            MAX_STRIP_ROWS, max(MIN_STRIP_ROWS, STRIP_PIXELS // max(1, width))
        )
        self.max_vertices = max_vertices
        #: pieces of regions too large to hold, written cut along strip edges
        self.parts_cut = 0
        self.seconds = 0.0
        #: seconds of it spent sieving, tracing (the backend's trace) and joining pieces
        self.timings = {"sieve": 0.0, "trace": 0.0, "join": 0.0}
        # The sieve's blocks are larger than the strips when its context is deep, so that
        # no row is sieved more than about twice.
        self.sieve_rows = max(self.strip_rows, 2 * self.margin)
        self._rows: list[np.ndarray] = []  # received rows not yet sieved, from row _first
        self._first = 0
        self._ready: list[np.ndarray] = []  # final rows not yet traced, from row _traced
        self._received = 0  # rows received so far
        self._sieved = 0  # rows final so far (sieved if asked)
        self._traced = 0  # rows traced so far
        self._open = _Open()

    def __call__(self, row: int, classes: np.ndarray) -> None:
        """Rows ``row`` .. ``row + len(classes)`` of the class map (0: not traced)."""
        if row != self._received:
            raise ValueError(f"rows must come in order: expected row {self._received}, got {row}")
        t = time.perf_counter()
        self._rows.append(np.asarray(classes, dtype=np.uint8))
        self._received += len(classes)
        while self._received - self._sieved >= self.sieve_rows + self.margin:
            self._sieve(self._sieved + self.sieve_rows)
        self._trace_ready(final=False)
        self.seconds += time.perf_counter() - t

    def finish(self) -> None:
        """Trace what is left and emit every open region (all rows must have come)."""
        if self._received != self.height:
            raise ValueError(f"{self._received} of {self.height} rows came")
        t = time.perf_counter()
        if self._sieved < self.height:
            self._sieve(self.height)
        self._trace_ready(final=True)
        self.seconds += time.perf_counter() - t

    # ------------------------------------------------------------------ steps
    def _sieve(self, end: int) -> None:
        """Rows up to ``end`` are final (sieved when asked): they move to the tracing buffer."""
        start = self._sieved
        window = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
        if self.margin:  # sieved with the context rows that make it exact
            self.check_cancel()
            lo = max(0, start - self.margin)
            hi = min(self._received, end + self.margin)
            block = window[lo - self._first : hi - self._first]
            t = time.perf_counter()
            done = sieve_window(self.fileio, block, self.remove_px, self.fill_px)
            self.timings["sieve"] += time.perf_counter() - t
            self._ready.append(done[start - lo : end - lo])
        else:
            self._ready.append(window[start - self._first : end - self._first])
        self._sieved = end
        # keep the context the next block's sieve needs
        keep_from = max(0, end - self.margin)
        self._rows = [window[keep_from - self._first :].copy()]
        self._first = keep_from

    def _trace_ready(self, final: bool) -> None:
        """Trace whole strips of the final rows (and the rest when ``final``)."""
        while self._ready and (self._sieved - self._traced >= self.strip_rows or final):
            ready = np.concatenate(self._ready) if len(self._ready) > 1 else self._ready[0]
            end = min(self._sieved, self._traced + self.strip_rows)
            self.check_cancel()
            self._trace(ready[: end - self._traced], self._traced, end)
            rest = ready[end - self._traced :]
            self._ready = [rest] if len(rest) else []
            self._traced = end

    def _trace(self, strip: np.ndarray, start: int, end: int) -> None:
        last = end >= self.height
        t = time.perf_counter()
        traced = self.fileio.trace(strip, start, self.check_cancel)
        self.timings["trace"] += time.perf_counter() - t
        self.check_cancel()
        # piece index of each pixel of the strip's first and last rows (-1: none), from the
        # exterior rings' edges along the strip's edges (no hole can lie on them)
        top, bottom = _edge_pieces([p[0] for p, _ in traced], self.width, start, end)
        if last:
            bottom[:] = -1
        op = self._open
        # pieces of this strip that continue a region of the strip above
        joins: dict[int, int] = {}  # piece -> region id above
        parent: dict[int, int] = {}  # union-find over the regions above (ids)

        def find(i: int) -> int:
            while parent.get(i, i) != i:
                parent[i] = parent.get(parent[i], parent[i])
                i = parent[i]
            return i

        if op.below is not None:
            linked = (op.below >= 0) & (top >= 0) & (op.below_class == strip[0])
            pairs = np.unique(np.stack([top[linked], op.below[linked]], axis=1), axis=0)
            for piece, region in pairs.tolist():
                if piece in joins:  # one piece touches two regions above: they are one
                    a, b = find(joins[piece]), find(region)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                else:
                    joins[piece] = region
        # regions above, merged, with this strip's pieces
        regions: dict[int, list[Polygon]] = {}
        sizes: dict[int, int] = {}
        for region in list(op.pieces):
            root = find(region)
            regions.setdefault(root, []).extend(op.pieces.pop(region))
            sizes[root] = sizes.get(root, 0) + op.sizes.pop(region)
            if region != root:
                op.values.pop(region, None)
                if region in op.cut:  # one cut region cuts what it joins
                    op.cut.discard(region)
                    op.cut.add(root)
        goes_on = set(np.unique(bottom[bottom >= 0]).tolist())
        region_of_piece = np.full(len(traced), -1, dtype=np.int64)
        carried = set()  # regions above that reach this strip's last row
        for k, (polygon, value) in enumerate(traced):
            if k in joins:
                root = find(joins[k])
                regions[root].append(polygon)
                sizes[root] += _vertices(polygon)
                region_of_piece[k] = root
                if k in goes_on:
                    carried.add(root)
            elif k in goes_on:  # a new region that goes on below
                rid = op.next_id
                op.next_id += 1
                op.pieces[rid], op.sizes[rid] = [polygon], _vertices(polygon)
                op.values[rid] = value
                region_of_piece[k] = rid
            else:  # whole in this strip
                self.emit(polygon, value)
        for root, pieces in regions.items():
            if root in carried and root not in op.cut and sizes[root] <= self.max_vertices:
                op.pieces[root], op.sizes[root] = pieces, sizes[root]
                continue
            value = op.values[root]
            if root in carried:  # too large to hold: from now on it goes out strip by strip
                op.pieces[root], op.sizes[root] = [], 0
                op.cut.add(root)
            else:  # it ended at or above this strip's last row
                op.values.pop(root)
            if root in op.cut:
                # cut along the strip edges as traced: joining a sea of holes is what would
                # take the memory (GEOS's overlay of its shells)
                self.parts_cut += len(pieces)
                for polygon in pieces:
                    self.emit(polygon, value)
                if root not in carried:
                    op.cut.discard(root)
            else:
                t = time.perf_counter()
                joined = self.join(pieces)
                self.timings["join"] += time.perf_counter() - t
                for polygon in joined:
                    self.emit(polygon, value)
        if last:
            op.below = op.below_class = None
            return
        # indexed only where a piece reaches the last row: a strip without any region (dry
        # land, a nodata border) has no piece to index
        op.below = np.full(self.width, -1, dtype=np.int64)
        reach = bottom >= 0
        op.below[reach] = region_of_piece[bottom[reach]]
        op.below_class = strip[-1].copy()

    def join(self, pieces: list[Polygon]) -> list[Polygon]:
        """One region's pieces as one polygon.

        Only exterior rings can touch a strip edge, so only they are joined: every hole of a
        piece is a hole of the region as it is. The shells are joined exactly by cancelling the
        seam edges they share (:mod:`.seams`); GEOS's union is the fallback should they not
        form one region along the strips' seams.
        """
        if len(pieces) <= 1:
            return pieces
        joined = join_polygons(pieces, meeting_rows(pieces, self.strip_rows))
        if joined is not None:
            return [joined]
        shells = self.fileio.union([[p[0]] for p in pieces])
        if len(shells) != 1:  # not one region after all: join whole polygons, holes and all
            return self.fileio.union(pieces)
        return [shells[0] + [ring for p in pieces for ring in p[1:]]]


def _vertices(polygon: Polygon) -> int:
    return sum(len(ring) for ring in polygon)


def _edge_pieces(
    shells: list[np.ndarray], width: int, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each column, the index of the shell whose edge runs along the line ``y = start``
    (the strip's top) and ``y = end`` (its bottom) there; -1 where none does. All shells at
    once: a strip at scene width holds thousands of pieces."""
    top = np.full(width, -1, dtype=np.int64)
    bottom = np.full(width, -1, dtype=np.int64)
    if not shells:
        return top, bottom
    xy = np.concatenate(shells)
    piece = np.repeat(np.arange(len(shells)), [len(s) for s in shells])
    # edges from each vertex to the next of the same ring (the rings are closed)
    x0, y0, x1, y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
    same = piece[:-1] == piece[1:]
    for row_ids, line in ((top, start), (bottom, end)):
        on = np.flatnonzero(same & (y0 == line) & (y1 == line))
        lo = np.minimum(x0[on], x1[on]).astype(np.int64)
        n = np.maximum(x0[on], x1[on]).astype(np.int64) - lo
        # every column each edge covers: lo, lo + 1, ..., lo + n - 1
        cols = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(n.sum())
        row_ids[cols] = np.repeat(piece[:-1][on], n)
    return top, bottom

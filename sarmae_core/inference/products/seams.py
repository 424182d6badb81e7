"""The pieces of one region, traced strip by strip, joined by cancelling their shared seam edges.

The pieces of a region meet only along strip seams (horizontal lines at whole-pixel rows), and
their rings have whole-pixel vertices: where the region's pixels lie on both sides of a seam,
the upper piece's bottom edge and the lower piece's top edge run over the same unit of the seam
in opposite directions (every shell walked with the region on the same side). Removing those
pairs and linking what is left, end to start, gives the region's rings exactly, with no
overlay: only the edges on seams are looked at one by one, the rest of each ring moves as whole
chains of vertices (numpy slices). GEOS's union of the shells, the general tool, takes 2.3x
as long on a water map of Sentinel-1 GRD width (``benchmarks/polygons.py``) and leaves a
vertex wherever a seam crossed a region's side; this join gives the whole raster's rings,
vertex for vertex.

Pinch points, where the region's boundary comes back to a corner it passed (two of its pixels
touch at that corner only), are where its rings touch: there the walk closes a loop, so no
ring touches itself (OGC-valid), as a trace of the whole raster gives them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..geo.geometry import Polygon


def join_shells(shells: Sequence[np.ndarray], seams: Iterable[int]) -> list[np.ndarray] | None:
    """The exterior rings of one region's pieces as the region's rings: its exterior ring
    first, then the holes the joins closed (an upper piece's U shut by a lower one).

    Args:
        shells: closed exterior rings (``[n, 2]``, whole-pixel coordinates) of pieces that
            meet along seams and together are one 4-connected region.
        seams: the rows of the strip seams (y) the pieces may meet on.

    Returns:
        The rings (closed, the exterior oriented as the first shell was), or None where the
        pieces are not one region along those seams (the caller joins them by overlay).
    """
    seam_rows = np.unique(np.fromiter(seams, dtype=np.int64))
    # All shells in one array of open rings (no repeated last vertex), vertex by vertex.
    lengths = np.array([len(s) - 1 for s in shells])
    first = np.cumsum(lengths) - lengths
    ring_of = np.repeat(np.arange(len(shells)), lengths)
    pos = np.arange(len(ring_of)) - first[ring_of]
    size = lengths[ring_of]
    xy = np.rint(np.concatenate([s[:-1] for s in shells])).astype(np.int64)
    after = first[ring_of] + (pos + 1) % size
    twice_area = np.bincount(
        ring_of, xy[:, 0] * xy[after, 1] - xy[after, 0] * xy[:, 1], minlength=len(shells)
    )
    flip = twice_area[0] < 0
    # every shell walked with the region on the same side (positive area)
    backwards = first[ring_of] + size - 1 - pos
    xy = xy[np.where(twice_area[ring_of] < 0, backwards, np.arange(len(pos)))]
    # the edge to the next vertex lies on a seam (seam_rows is sorted: a river down a whole
    # scene meets a hundred of them, so no vertex-by-seam table)
    at = np.minimum(np.searchsorted(seam_rows, xy[:, 1]), max(len(seam_rows) - 1, 0))
    on_row = seam_rows[at] == xy[:, 1] if len(seam_rows) else np.zeros(len(xy), dtype=bool)
    on_seam = (xy[:, 1] == xy[after, 1]) & on_row
    if (np.bincount(ring_of, on_seam, minlength=len(shells)) == 0).any():
        return None  # a piece that meets no seam is not joined to the others here
    # Walks may turn where seam edges start or end, and at vertices two pieces share off the
    # seams (two pieces of one strip touching at a corner): there chains of edges break.
    _, inverse, counts = np.unique(_key(xy), return_inverse=True, return_counts=True)
    before = first[ring_of] + (pos - 1) % size
    breaks = on_seam | on_seam[before] | (counts[inverse] > 1)
    # Each ring rotated to start on a seam edge and closed, so that every chain is a slice.
    seam_at = np.flatnonzero(on_seam)
    start = seam_at[np.unique(ring_of[seam_at], return_index=True)[1]] - first
    rotated = first[ring_of] + (pos + start[ring_of]) % size
    order = np.insert(rotated, first + lengths, rotated[first])
    closed = xy[order]
    ends = np.zeros(len(order), dtype=bool)
    ends[first + lengths + np.arange(len(shells))] = True  # a ring's closing vertex
    seam_edge = on_seam[order] & ~ends
    at_break = np.flatnonzero(breaks[order])
    chains = [closed[a : b + 1] for a, b in zip(at_break[:-1].tolist(), at_break[1:].tolist(),
                                                 strict=True)
              if not seam_edge[a] and not ends[a]]  # fmt: skip
    edge = np.flatnonzero(seam_edge)
    x0, x1, y = closed[edge, 0], closed[edge + 1, 0], closed[edge, 1]
    step = np.sign(x1 - x0)
    length = np.abs(x1 - x0)
    # each seam edge as unit edges: [x, x + 1] at y, walked right (+1) or left (-1)
    k = np.repeat(np.arange(len(edge)), length)
    offset = np.arange(len(k)) - np.repeat(np.cumsum(length) - length, length)
    left = np.where(step[k] > 0, x0[k] + offset, x0[k] - offset - 1)
    unit = np.stack([y[k], left, step[k]], axis=1)
    # a unit walked both ways has the region on both sides: it is inside, it goes
    key = _key(unit[:, [1, 0]])
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    if counts.max() > 2 or np.bincount(inverse, weights=unit[:, 2])[counts == 2].any():
        return None  # pieces that overlap: not the traces of one region
    unit = unit[counts[inverse] == 1]
    rings = _link(chains, _runs(unit, chains))
    if rings is None:
        return None
    areas = np.array([_signed_area(r) for r in rings])
    if (areas > 0).sum() != 1:
        return None
    outer = int(np.argmax(areas))
    rings = [rings[outer]] + [r for i, r in enumerate(rings) if i != outer]
    out = [_without_collinear(r).astype(float) for r in rings]
    return [r[::-1] for r in out] if flip else out


def join_polygons(pieces: Sequence[Polygon], seams: Iterable[int]) -> Polygon | None:
    """One region's pieces as one polygon: the joined exterior (:func:`join_shells`), the
    holes the joins closed, and every piece's own holes as they are (a hole never touches a
    strip edge). None where the pieces are not one region along ``seams``."""
    rings = join_shells([p[0] for p in pieces], seams)
    if rings is None:
        return None
    return rings + [ring for p in pieces for ring in p[1:]]


def meeting_rows(pieces: Sequence[Polygon], strip_rows: int) -> list[int]:
    """The strip seams (multiples of ``strip_rows``) where one of the pieces ends and another
    starts: the only rows along which pieces traced strip by strip can meet."""
    tops = {int(p[0][:, 1].min()) for p in pieces}
    bottoms = {int(p[0][:, 1].max()) for p in pieces}
    return sorted(y for y in tops & bottoms if y % strip_rows == 0)


def _runs(unit: np.ndarray, chains: list[np.ndarray]) -> list[np.ndarray]:
    """The unit seam edges left, joined into runs (one edge per straight stretch), broken
    where a chain starts or ends (a pinch point on the seam)."""
    if not len(unit):
        return []
    end_key = _key(np.array([c[i] for c in chains for i in (0, -1)], np.int64).reshape(-1, 2))
    order = np.lexsort((unit[:, 1], unit[:, 2], unit[:, 0]))  # by y, direction, x
    y, left, step = unit[order, 0], unit[order, 1], unit[order, 2]
    # consecutive units continue one run unless they leave a gap, change line or direction,
    # or meet at a point where a chain attaches
    same = (y[1:] == y[:-1]) & (step[1:] == step[:-1]) & (left[1:] == left[:-1] + 1)
    joint = _key(np.stack([left[1:], y[1:]], axis=1))
    same &= ~np.isin(joint, end_key)
    starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
    stops = np.concatenate([starts[1:], [len(y)]]) - 1
    runs = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        lo, hi, row = int(left[a]), int(left[b]) + 1, int(y[a])
        if step[a] > 0:
            runs.append(np.array([[lo, row], [hi, row]], dtype=np.int64))
        else:
            runs.append(np.array([[hi, row], [lo, row]], dtype=np.int64))
    return runs


def _link(chains: list[np.ndarray], runs: list[np.ndarray]) -> list[np.ndarray] | None:
    """Walk the pieces of boundary end to start into closed rings. A walk that comes back to a
    point it passed (a pinch) closes a loop there: the rings touch at that point and none
    touches itself (OGC-valid, as a whole-raster trace gives them), whichever way the walk
    went on at the pinch. None where a walk does not close."""
    parts = chains + runs
    starts: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(parts):
        starts.setdefault((int(p[0, 0]), int(p[0, 1])), []).append(i)
    used = np.zeros(len(parts), dtype=bool)
    rings = []
    for first in range(len(parts)):
        if used[first]:
            continue
        used[first] = True
        walk = [parts[first]]
        at = {(int(parts[first][0, 0]), int(parts[first][0, 1])): 0}  # point -> walk index
        while walk:
            end = (int(walk[-1][-1, 0]), int(walk[-1][-1, 1]))
            k = at.get(end)
            if k is not None:  # back at a point of this walk: the loop from there is a ring
                rings.append(np.concatenate([walk[k]] + [w[1:] for w in walk[k + 1 :]]))
                for w in walk[k:]:
                    del at[(int(w[0, 0]), int(w[0, 1]))]
                del walk[k:]
                if not walk:
                    break
            options = [i for i in starts.get(end, ()) if not used[i]]
            if not options:
                return None
            used[options[0]] = True
            at[end] = len(walk)
            walk.append(parts[options[0]])
    return rings


def _key(xy: np.ndarray) -> np.ndarray:
    """One integer per whole-pixel point (x, y)."""
    return xy[:, 1] * (1 << 32) + xy[:, 0]


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0].astype(float), ring[:, 1].astype(float)
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _without_collinear(ring: np.ndarray) -> np.ndarray:
    """The closed ring without vertices on a straight stretch (where a seam crossed a side)."""
    open_ring = ring[:-1]
    step = np.diff(ring, axis=0)  # step i leads from vertex i to i + 1
    before = np.concatenate([step[-1:], step[:-1]])  # the step into each vertex
    straight = (before[:, 0] * step[:, 1] == before[:, 1] * step[:, 0]) & (
        (before * step).sum(axis=1) > 0
    )
    kept = open_ring[~straight]
    return np.concatenate([kept, kept[:1]])

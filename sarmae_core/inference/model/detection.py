"""Decoding CenterNet outputs into boxes, and non-maximum suppression, in numpy.

Output contract (see :class:`sarmae_core.models.heads.DetectionModel`): ``heatmap`` [K, h, w]
sigmoid scores at stride ``s = H / h``; ``size`` [2, h, w] box (width, height) in input pixels;
``offset`` [2, h, w] sub-cell centre offset. A detection is a heatmap cell equal to the maximum
of its 3x3 neighbourhood and at least the confidence threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes ``[n, 4]`` as (x0, y0, x1, y1) pixels, with scores ``[n]`` and classes ``[n]``;
    ``fitted`` ``[n]`` (None: none) marks boxes redrawn around the hull under them
    (:func:`fit_boxes_to_hulls`), the others being the detector's own."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    fitted: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float64), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def is_fitted(self) -> np.ndarray:
        """[n] bool: which boxes were fitted to a hull."""
        return np.zeros(len(self), bool) if self.fitted is None else self.fitted

    def select(self, keep: np.ndarray) -> Detections:
        fitted = None if self.fitted is None else self.fitted[keep]
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep], fitted)

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        fitted = None
        if any(p.fitted is not None for p in parts):
            fitted = np.concatenate([p.is_fitted() for p in parts])
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.classes for p in parts]),
            fitted,
        )


def local_maxima(heatmap: np.ndarray) -> np.ndarray:
    """Cells of ``heatmap`` [K, h, w] equal to their 3x3 max-pool (CenterNet's peak test)."""
    _k, h, w = heatmap.shape
    padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    pooled = heatmap.copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(pooled, padded[:, dy : dy + h, dx : dx + w], out=pooled)
    return heatmap >= pooled


def decode_centernet(
    heatmap: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    confidence: float,
    tile_height: int,
) -> Detections:
    """Boxes of one tile, in the tile's pixel coordinates.

    Args:
        heatmap: [K, h, w] scores in (0, 1).
        size: [2, h, w] box width and height in input pixels.
        offset: [2, h, w] centre offset within the cell, in cells.
        confidence: minimum score.
        tile_height: input tile height H (the stride is ``H / h``).
    """
    stride = tile_height / heatmap.shape[-2]
    peaks = local_maxima(heatmap) & (heatmap >= confidence)
    cls, iy, ix = np.nonzero(peaks)
    if cls.size == 0:
        return Detections.empty()
    cx = (ix + offset[0, iy, ix]) * stride
    cy = (iy + offset[1, iy, ix]) * stride
    w, h = size[0, iy, ix], size[1, iy, ix]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float64)
    return Detections(boxes, heatmap[cls, iy, ix].astype(np.float32), cls.astype(np.int64))


def tile_detections(
    outputs: dict[str, np.ndarray], confidence: float, tile_height: int
) -> Detections:
    """Boxes of one tile from a detection backend's outputs, in the tile's pixels.

    CenterNet outputs (``heatmap``, ``size``, ``offset``) are decoded; a backend that finds
    boxes itself (CFAR) gives ``detections`` [M, 6] rows (x0, y0, x1, y1, score, class),
    NaN rows being padding.
    """
    if "detections" in outputs:
        rows = np.asarray(outputs["detections"], np.float64).reshape(-1, 6)
        rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 4] >= confidence)]
        return Detections(rows[:, :4].copy(), rows[:, 4].astype(np.float32),
                          rows[:, 5].astype(np.int64))  # fmt: skip
    return decode_centernet(
        outputs["heatmap"], outputs["size"], outputs["offset"], confidence, tile_height
    )


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [n, 4]."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def cut_edges(
    boxes: np.ndarray, window: tuple[int, int, int, int], extent: tuple[int, int], margin: float
) -> np.ndarray:
    """Where boxes [n, 4] seen in ``window`` (row, col, height, width) are cut by its edges.

    Returns [n, 4]: for each box side (x0, y0, x1, y1) the coordinate of the window edge it
    lies on (within ``margin`` px), NaN where it does not or where that edge is the raster's
    own (``extent`` = raster height, width): what lies beyond was not seen by this window.
    """
    row, col, h, w = window
    height, width = extent
    edges = np.array([col, row, col + w, row + h], np.float64)
    inner = np.array([col > 0, row > 0, col + w < width, row + h < height])
    near = np.abs(boxes - edges) <= margin
    near[:, :2] |= boxes[:, :2] < edges[:2]  # a box predicted past the edge is cut too
    near[:, 2:] |= boxes[:, 2:] > edges[2:]
    return np.where(near & inner, edges, np.nan)


def merge_cut_boxes(dets: Detections, cuts: np.ndarray, gap: float = 2.0) -> Detections:
    """Join the pieces of objects that tile edges cut into one box per object.

    A tile sees only part of a ship that crosses its edge (or is longer than the tile); the
    neighbouring tile sees the rest. Non-maximum suppression cannot join such pieces (their
    IoU is small), so a box cut at an edge (``cuts``, see :func:`cut_edges`) is merged with
    every box of its class that runs across that edge line and meets it across the other axis
    (within ``gap`` px). Merging is transitive (a ship over three tiles gives one box); the
    union box keeps the best score.

    Args:
        dets: detections of the whole raster, in raster pixels.
        cuts: [n, 4] cut edge coordinate per box side, NaN where uncut.
        gap: pixels two boxes may lie apart across the edge and still be one object.
    """
    n = len(dets)
    if n < 2 or not np.isfinite(cuts).any():
        return dets
    groups = _Groups(n)

    b = dets.boxes
    for i, side in zip(*np.nonzero(np.isfinite(cuts)), strict=True):
        e = cuts[i, side]
        ax = side % 2  # 0: a vertical edge (x), 1: a horizontal one (y)
        lo, hi = b[:, ax], b[:, ax + 2]
        beyond = (hi > e + gap) & (lo < e) if side >= 2 else (lo < e - gap) & (hi > e)
        other = 1 - ax
        meet = np.minimum(b[:, other + 2], b[i, other + 2]) - np.maximum(b[:, other], b[i, other])
        for j in np.nonzero(beyond & (meet > -gap) & (dets.classes == dets.classes[i]))[0]:
            groups.join(int(i), int(j))
    return _union_groups(dets, groups.roots())


def merge_fragments(dets: Detections, across: float = 0.6, score_ratio: float = 0.4) -> Detections:
    """Join boxes that are pieces of one hull: overlapping, on one line, of similar scores.

    A detector can split a long ship into two overlapping half-length boxes whose IoU is too
    small for NMS (issue 11: two half boxes per long ship, neither counted as found). Two boxes
    of a class are joined when they overlap, their extents across the line joining them (the
    union's shorter side) overlap by at least ``across`` of the narrower one, the union is
    longer than either along that line, and the weaker score is at least ``score_ratio`` of
    the stronger. Ships moored side by side (boxes beside each other across the line) stay
    apart; two ships bow to stern whose boxes overlap would be joined. Transitive; the union
    keeps the best score.
    """
    n = len(dets)
    if n < 2:
        return dets
    b, s = dets.boxes, dets.scores
    groups = _Groups(n)

    for i in range(n - 1):
        j = np.arange(i + 1, n)
        ix = np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0])
        iy = np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1])
        similar = np.minimum(s[i], s[j]) >= score_ratio * np.maximum(s[i], s[j])
        join = (ix > 0) & (iy > 0) & on_one_line(b[i], b[j], across) & similar
        join &= dets.classes[j] == dets.classes[i]
        for k in j[join]:
            groups.join(i, int(k))
    return _union_groups(dets, groups.roots())


def on_one_line(box: np.ndarray, boxes: np.ndarray, across: float = 0.6) -> np.ndarray:
    """Whether ``box`` [4] and each of ``boxes`` [n, 4] could be pieces of one hull: along the
    line joining them (their union's longer side) the union is longer than either, and across
    it their extents overlap by at least ``across`` of the narrower one. Ships side by side
    (beside each other across the line) are not."""
    ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    ux = np.maximum(box[2], boxes[:, 2]) - np.minimum(box[0], boxes[:, 0])
    uy = np.maximum(box[3], boxes[:, 3]) - np.minimum(box[1], boxes[:, 1])
    wi, hi = box[2] - box[0], box[3] - box[1]
    wj, hj = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    along_x = ux >= uy  # the line joining them runs along x
    narrow = np.where(along_x, np.minimum(hi, hj), np.minimum(wi, wj))
    cross = np.where(along_x, iy, ix)
    longer = np.where(along_x, ux > np.maximum(wi, wj), uy > np.maximum(hi, hj))
    return (cross >= across * narrow) & longer


class _Groups:
    """Union-find over n boxes: which boxes are pieces of one ship (the lowest index leads)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps chains short
            i = parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))])


def _union_groups(dets: Detections, roots: np.ndarray) -> Detections:
    """One box per root: the union of its members' boxes, with their best score."""
    if (roots == np.arange(len(roots))).all():
        return dets
    groups, inverse = np.unique(roots, return_inverse=True)
    b = dets.boxes
    boxes = np.empty((len(groups), 4))
    boxes[:, :2], boxes[:, 2:] = np.inf, -np.inf
    np.minimum.at(boxes[:, 0], inverse, b[:, 0])
    np.minimum.at(boxes[:, 1], inverse, b[:, 1])
    np.maximum.at(boxes[:, 2], inverse, b[:, 2])
    np.maximum.at(boxes[:, 3], inverse, b[:, 3])
    scores = np.zeros(len(groups), np.float32)
    np.maximum.at(scores, inverse, dets.scores)
    return Detections(boxes, scores, dets.classes[groups])


def nms(dets: Detections, iou_threshold: float) -> Detections:
    """Greedy per-class non-maximum suppression, best score first.

    Applied to the detections of the whole raster at once, so an object seen by two
    overlapping tiles is kept once.
    """
    keep: list[int] = []
    for c in np.unique(dets.classes):
        idx = np.nonzero(dets.classes == c)[0]
        order = idx[np.argsort(-dets.scores[idx], kind="stable")]
        while order.size:
            best = order[0]
            keep.append(int(best))
            rest = order[1:]
            order = rest[box_iou(dets.boxes[best], dets.boxes[rest]) <= iou_threshold]
    keep_arr = np.array(sorted(keep, key=lambda i: -dets.scores[i]), dtype=np.int64)
    return dets.select(keep_arr) if keep else Detections.empty()


#: Where a hull is cut, as the fraction of the way from the sea's median to the target's peak
#: in dB (0.6: e.g. sea at -20 dB, peak at +10 dB: pixels above -2 dB). Chosen on HRSID scene
#: fold 0 over 0.3-0.7 and checked on fold 1 and the bundled split (training/README.md,
#: "Ships: boxes fitted to the hull").
HULL_LEVEL = 0.6
#: A fitted box must overlap the detector's box this much (IoU), or it is a neighbour's.
HULL_MIN_IOU = 0.2
#: How far beyond each side of a box its hull may reach, in box lengths: a half-length box
#: at one end of a hull must still see the other end inside its window.
HULL_REACH = 1.5
#: Boxes shorter than this (px) keep the detector's: a target a few pixels long is mostly
#: the radar's impulse response, whose bright core is smaller than the ship.
HULL_MIN_PX = 8.0
#: Contrast below which nothing stands out of the sea to fit to (dB, peak over median).
HULL_MIN_CONTRAST_DB = 3.0


def hull_db(data: np.ndarray, units: str) -> tuple[np.ndarray, np.ndarray]:
    """What hulls are fitted on: [C, h, w] in ``units`` -> (the channels' mean intensity in dB
    [h, w], pixels with a positive finite intensity [h, w])."""
    from ...units import to_intensity

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        intensity = to_intensity(np.asarray(data, np.float64), units).mean(axis=0)
        valid = np.isfinite(intensity) & (intensity > 0)
        return 10.0 * np.log10(np.where(valid, intensity, 1.0)), valid


def array_windows(
    db: np.ndarray, valid: np.ndarray
) -> Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]:
    """:func:`fit_boxes_to_hulls`' window reader over an image held in memory."""
    return lambda r, c, h, w: (db[r : r + h, c : c + w], valid[r : r + h, c : c + w])


def hull_box(
    db: np.ndarray,
    valid: np.ndarray,
    box: np.ndarray,
    inner: tuple[bool, bool, bool, bool],
    level: float = HULL_LEVEL,
) -> np.ndarray | None:
    """The box of the bright hull under a detection, in the pixels of a window around it.

    The pixels brighter than ``level`` of the way from the window's sea (the median outside
    the box) to the box's peak (its 99th percentile), all in dB, that connect (8-neighbours) to
    the 5 x 5 pixels at the box centre make the hull; its extent is the new box. None where
    nothing stands out, the centre is not bright, the hull runs into an edge of the window
    that is not the raster's (land, or a neighbour: the window holds only part of it), or the
    hull's box barely overlaps the detector's (another object).

    Args:
        db: [h, w] intensity in dB around the detection.
        valid: [h, w] pixels with data.
        box: (x0, y0, x1, y1) of the detection in window pixels.
        inner: whether the window's left, top, right and bottom edges lie inside the raster.
        level: see :data:`HULL_LEVEL`.
    """
    from .cfar import label_components

    h, w = db.shape
    x0, y0, x1, y1 = box
    inside = np.zeros((h, w), bool)
    r0, c0 = min(max(int(np.floor(y0)), 0), h - 1), min(max(int(np.floor(x0)), 0), w - 1)
    inside[r0 : max(int(np.ceil(y1)), r0 + 1), c0 : max(int(np.ceil(x1)), c0 + 1)] = True
    target, sea = db[inside & valid], db[~inside & valid]
    if target.size == 0 or sea.size < 16:
        return None
    floor, peak = float(np.median(sea)), float(np.percentile(target, 99))
    if peak - floor < HULL_MIN_CONTRAST_DB:
        return None
    bright = valid & (db > floor + level * (peak - floor))
    labels, _ = label_components(bright)
    cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
    core = labels[max(cy - 2, 0) : cy + 3, max(cx - 2, 0) : cx + 3]
    ids = np.unique(core[core > 0])
    if ids.size == 0:
        return None
    rows, cols = np.nonzero(np.isin(labels, ids))
    edges = (cols.min() == 0, rows.min() == 0, cols.max() == w - 1, rows.max() == h - 1)
    if any(e and i for e, i in zip(edges, inner, strict=True)):
        return None
    fitted = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)
    if box_iou(fitted, np.asarray(box, np.float64)[None])[0] < HULL_MIN_IOU:
        return None
    return fitted


def fit_boxes_to_hulls(
    dets: Detections,
    read: Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]],
    extent: tuple[int, int],
    iou_threshold: float,
    level: float = HULL_LEVEL,
) -> Detections:
    """Each box redrawn around the bright hull under it (:func:`hull_box`), then NMS again.

    A CenterNet box is a regressed size, and on long ships it runs short (0.83 of the hull on
    held-out HRSID scenes) or in pieces; the pixels themselves say where a ship on open water
    ends. The window around a box reaches :data:`HULL_REACH` box lengths (at least 8 px)
    beyond each side.
    Boxes that cannot be fitted keep the detector's, and so do boxes shorter than
    :data:`HULL_MIN_PX` and a box whose hull reaches the centre of another detection that is
    not a piece of it on one line (:func:`on_one_line`: two ships joined by bright pixels
    stay two boxes); pieces of one hull fitted to the same hull are then one box (NMS at
    ``iou_threshold``).

    Args:
        dets: detections in raster pixels.
        read: ``(row, col, height, width) -> (dB [h, w], valid [h, w])`` of the raster.
        extent: raster (height, width).
        iou_threshold: the detector's NMS IoU.
        level: see :data:`HULL_LEVEL`.
    """
    if not len(dets):
        return dets
    height, width = extent
    boxes = dets.boxes.copy()
    fitted_ones = dets.is_fitted().copy()
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    for i, (x0, y0, x1, y1) in enumerate(dets.boxes):
        if max(x1 - x0, y1 - y0) < HULL_MIN_PX:
            continue
        m = max(8.0, HULL_REACH * float(max(x1 - x0, y1 - y0)))
        r0, c0 = max(int(np.floor(y0 - m)), 0), max(int(np.floor(x0 - m)), 0)
        r1, c1 = min(int(np.ceil(y1 + m)), height), min(int(np.ceil(x1 + m)), width)
        if r1 - r0 < 3 or c1 - c0 < 3:
            continue
        db, valid = read(r0, c0, r1 - r0, c1 - c0)
        local = np.array([x0 - c0, y0 - r0, x1 - c0, y1 - r0])
        inner = (c0 > 0, r0 > 0, c1 < width, r1 < height)
        fitted = hull_box(db, valid, local, inner, level)
        if fitted is None:
            continue
        fitted += np.array([c0, r0, c0, r0])
        # a hull that reaches the centre of a detection apart from this one (boxes not
        # overlapping) is one hull only if the two are pieces on one line; else they are two
        # ships joined by bright pixels (moored side by side)
        others = np.all((centres >= fitted[:2]) & (centres <= fitted[2:]), axis=1)
        others &= box_iou(dets.boxes[i], dets.boxes) <= 0.0
        others &= dets.classes == dets.classes[i]
        if others.any() and not on_one_line(dets.boxes[i], dets.boxes[others]).all():
            continue
        boxes[i], fitted_ones[i] = fitted, True
    refit = Detections(boxes, dets.scores.copy(), dets.classes.copy(), fitted_ones)
    return nms(refit, iou_threshold)

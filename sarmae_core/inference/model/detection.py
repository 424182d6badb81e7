"""Decoding CenterNet outputs into boxes, and non-maximum suppression, in numpy.

Output contract (see :class:`sarmae_core.models.heads.DetectionModel`): ``heatmap`` [K, h, w]
sigmoid scores at stride ``s = H / h``; ``size`` [2, h, w] box (width, height) in input pixels;
``offset`` [2, h, w] sub-cell centre offset. A detection is a heatmap cell equal to the maximum
of its 3x3 neighbourhood and at least the confidence threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes ``[n, 4]`` as (x0, y0, x1, y1) pixels, with scores ``[n]`` and classes ``[n]``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float64), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.classes for p in parts]),
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
        ux = np.maximum(b[i, 2], b[j, 2]) - np.minimum(b[i, 0], b[j, 0])
        uy = np.maximum(b[i, 3], b[j, 3]) - np.minimum(b[i, 1], b[j, 1])
        wi, hi = b[i, 2] - b[i, 0], b[i, 3] - b[i, 1]
        wj, hj = b[j, 2] - b[j, 0], b[j, 3] - b[j, 1]
        along_x = ux >= uy  # the line joining them runs along x
        narrow = np.where(along_x, np.minimum(hi, hj), np.minimum(wi, wj))
        cross = np.where(along_x, iy, ix)
        longer = np.where(along_x, ux > np.maximum(wi, wj), uy > np.maximum(hi, hj))
        similar = np.minimum(s[i], s[j]) >= score_ratio * np.maximum(s[i], s[j])
        join = (ix > 0) & (iy > 0) & (cross >= across * narrow) & longer & similar
        join &= dets.classes[j] == dets.classes[i]
        for k in j[join]:
            groups.join(i, int(k))
    return _union_groups(dets, groups.roots())


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

"""Cell-averaging CFAR ship detection (CA-CFAR), numpy only: the classic non-learned baseline.

A pixel is a detection when its intensity exceeds ``alpha`` times the mean intensity of its
background ring: the square of ``background`` px around it minus the square of ``guard`` px
(the guard keeps the ship itself out of its own background). ``alpha`` follows from the
probability of false alarm ``pfa`` under a clutter model of the sea (Gandhi & Kassam 1988;
Crisp, DSTO-RR-0272, 2004):

- ``looks = 1``: exponential intensity (single-look speckle). The exact CA-CFAR factor for
  ``n`` background cells, which includes the noise of the estimated mean, is
  ``alpha = n (pfa ** (-1 / n) - 1)``.
- ``looks = L > 1``: gamma intensity with L looks (multilooked GRD). ``alpha`` is the gamma
  quantile ``Q^-1(L, pfa) / L`` of a known mean; with hundreds of background cells the mean's
  own noise changes ``alpha`` by a few percent.

Targets are censored from the rings (:func:`cfar_mask`), so a long hull does not hide itself.

Detected pixels with at most ``2 * join`` px between them are one target (SAR hulls break
into bright scatterers); targets with fewer than ``min_pixels`` detected pixels are dropped.
A target's box spans its detected pixels; its score, ``1 - 1 / r``, grows with ``r``, the
brightest pixel's ratio to its threshold (0.5: twice the threshold), so boxes can be ranked
and thresholded like a model's.

:class:`CfarDetector` is a :class:`~sarmae_core.inference.model.backends.Backend`: the engine reads,
tiles and masks a scene for it as for an ONNX model (pixels outside the area of interest, such
as land cut out by a sea polygon, are filled with the tile's mean before detection, so they
neither detect nor raise a neighbour's background), and keeps, suppresses and merges its
boxes across tiles in the same way. Torch-free and SciPy-free, like the rest of the
inference package that the QGIS plugin carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...contract.metadata import ModelInfo
from ...errors import ConfigError

#: What ``predict(model=...)`` and ``--detector`` call this detector.
CFAR_NAME = "cfar"


@dataclass(frozen=True)
class CfarParams:
    """CA-CFAR settings (pixels of the scene as read).

    Attributes:
        guard: side of the guard window centred on the pixel under test, odd, px: larger than
            the ships' width so a hull does not raise its own background.
        background: side of the outer window, odd, px; the ring between the two estimates the
            clutter mean (41 px around a 15 px guard: 1456 cells).
        pfa: probability of false alarm per pixel under the clutter model.
        looks: clutter model: gamma intensity with this many looks (1: exponential).
        min_pixels: fewest detected pixels in a target.
        min_area_m2: smallest target area on the ground (detected pixels times the pixel
            area); needs a georeferenced scene.
        join: detected pixels with at most ``2 * join`` px between them (rows, columns or
            diagonals) are one target.
    """

    guard: int = 15
    background: int = 41
    pfa: float = 1e-3
    looks: float = 1.0
    min_pixels: int = 4
    min_area_m2: float = 0.0
    join: int = 1

    def __post_init__(self) -> None:
        for name in ("guard", "background"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v % 2 == 0:
                raise ConfigError(f"CFAR {name} window must be an odd number of pixels, got {v}")
        if self.background < self.guard + 4:
            raise ConfigError(
                f"CFAR background window ({self.background} px) must exceed the guard window "
                f"({self.guard} px) by at least 4 px, so the ring holds clutter to average"
            )
        if not 0 < self.pfa < 0.5:
            raise ConfigError(f"CFAR pfa must be between 0 and 0.5, got {self.pfa}")
        if not self.looks > 0:
            raise ConfigError(f"CFAR looks must be positive, got {self.looks}")
        if self.min_pixels < 1 or self.min_area_m2 < 0 or self.join < 0:
            raise ConfigError(
                "CFAR min_pixels must be at least 1, min_area_m2 and join at least 0; got "
                f"{self.min_pixels}, {self.min_area_m2}, {self.join}"
            )

    @property
    def ring_cells(self) -> int:
        return self.background**2 - self.guard**2

    def alpha(self) -> float:
        """Threshold factor on the background mean for ``pfa`` under the clutter model."""
        n = self.ring_cells
        if self.looks == 1:
            return n * (self.pfa ** (-1.0 / n) - 1.0)
        return gamma_isf(self.looks, self.pfa) / self.looks


def gamma_sf(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (Numerical Recipes 6.2: series below
    ``a + 1``, Lentz's continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        k = a
        for _ in range(1000):
            k += 1
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def gamma_isf(a: float, p: float) -> float:
    """The x with Q(a, x) = p (bisection on a log scale; Q falls monotonically in x)."""
    lo, hi = 1e-12, max(10.0, 4 * a)
    while gamma_sf(a, hi) > p:
        hi *= 2
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if gamma_sf(a, mid) > p else (lo, mid)
        if hi / lo < 1 + 1e-12:
            break
    return math.sqrt(lo * hi)


def box_sum(image: np.ndarray, side: int) -> np.ndarray:
    """Sum over the ``side`` x ``side`` window centred on each pixel of an image padded by at
    least ``side // 2`` on every side; returns the unpadded shape minus that margin twice."""
    r = side // 2
    c = np.zeros((image.shape[0] + 1, image.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(image, axis=0, dtype=np.float64), axis=1, out=c[1:, 1:])
    h, w = image.shape[0] - 2 * r, image.shape[1] - 2 * r
    below, right = c[side : side + h, side : side + w], c[:h, side : side + w]
    return below - right - c[side : side + h, :w] + c[:h, :w]


def ring_sum(padded: np.ndarray, params: CfarParams) -> np.ndarray:
    """Sum over each pixel's background ring (outer window minus guard window)."""
    cut = params.background // 2 - params.guard // 2
    inner = padded[cut : padded.shape[0] - cut, cut : padded.shape[1] - cut]
    return box_sum(padded, params.background) - box_sum(inner, params.guard)


def cfar_mask(intensity: np.ndarray, params: CfarParams) -> tuple[np.ndarray, np.ndarray]:
    """Detected pixels of one [H, W] intensity image, and each pixel's ratio to its threshold.

    Bright pixels are censored from the background rings: those above ``alpha`` times the
    image's mean (and their 8 neighbours) are left out of every ring's mean. Without that, a
    hull longer than the guard window raises its own background and only its ends are
    detected (one ship, two boxes). A ring left with too few cells to estimate a mean (a
    quarter of its cells) detects nothing. Borders are mirrored so edge pixels get a ring.
    """
    r = params.background // 2
    x = np.nan_to_num(np.asarray(intensity, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.maximum(x, 0.0)
    alpha = params.alpha()
    clutter = ~dilate(x > alpha * x.mean(), 1)
    mode = "reflect" if min(x.shape) > r else "symmetric"
    total = ring_sum(np.pad(np.where(clutter, x, 0.0), r, mode=mode), params)
    cells = ring_sum(np.pad(clutter.astype(np.float64), r, mode=mode), params)
    enough = cells >= params.ring_cells / 4
    mean = np.divide(total, cells, out=np.zeros_like(x), where=enough)
    threshold = alpha * mean
    ratio = np.divide(x, threshold, out=np.zeros_like(x), where=enough & (threshold > 0))
    return ratio > 1.0, ratio


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of ``mask`` [H, W]: labels (0 = background, 1..n) and n.

    Run-length union-find: rows are cut into runs of set pixels, runs that touch in
    consecutive rows (diagonals included) are joined. Its cost follows the number of runs,
    which is small for CFAR detections, and it needs no SciPy.
    """
    h, w = mask.shape
    m = np.zeros((h, w + 2), np.int8)
    m[:, 1:-1] = mask
    d = np.diff(m, axis=1)
    sr, sc = np.nonzero(d == 1)  # run starts (column of the first set pixel)
    _er, ec = np.nonzero(d == -1)  # run ends (column after the last set pixel)
    n_runs = len(sr)
    labels = np.zeros((h, w), np.int32)
    if n_runs == 0:
        return labels, 0
    parent = list(range(n_runs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_start = np.searchsorted(sr, np.arange(h + 1))
    for row in range(1, h):
        a0, a1 = row_start[row - 1], row_start[row]
        b0, b1 = row_start[row], row_start[row + 1]
        if a0 == a1 or b0 == b1:
            continue
        a_start, a_end = sc[a0:a1], ec[a0:a1]
        # run b touches run a (8-connectivity) when a_start <= b_end and b_start <= a_end
        lo = np.searchsorted(a_end, sc[b0:b1], side="left")
        hi = np.searchsorted(a_start, ec[b0:b1] + 1, side="left")
        for k in np.nonzero(hi > lo)[0]:
            rb = find(b0 + int(k))
            for a in range(a0 + int(lo[k]), a0 + int(hi[k])):
                ra = find(a)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                    rb = min(ra, rb)
    roots = np.array([find(i) for i in range(n_runs)])
    _, comp = np.unique(roots, return_inverse=True)
    for i in range(n_runs):
        labels[sr[i], sc[i] : ec[i]] = comp[i] + 1
    return labels, int(comp.max()) + 1


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2 radius + 1) square, via a box sum."""
    if radius <= 0:
        return mask
    padded = np.pad(mask.astype(np.float64), radius)
    return box_sum(padded, 2 * radius + 1) > 0.5


def cfar_detect(
    intensity: np.ndarray, params: CfarParams, pixel_area_m2: float | None = None
) -> np.ndarray:
    """Targets of one [H, W] intensity image: rows (x0, y0, x1, y1, score, class 0), pixels.

    Args:
        intensity: linear intensity (sigma0 or DN squared; CFAR is scale-free).
        params: windows, PFA, clutter model, minimum size.
        pixel_area_m2: ground area of one pixel, for ``params.min_area_m2`` (None: unknown,
            the area limit is not applied).
    """
    detected, ratio = cfar_mask(intensity, params)
    if not detected.any():
        return np.zeros((0, 6), np.float64)
    labels, n = label_components(dilate(detected, params.join))
    rows, cols = np.nonzero(detected)
    comp = labels[rows, cols] - 1
    count = np.bincount(comp, minlength=n)
    x0 = np.full(n, np.inf)
    y0 = np.full(n, np.inf)
    x1 = np.full(n, -np.inf)
    y1 = np.full(n, -np.inf)
    peak = np.zeros(n)
    np.minimum.at(x0, comp, cols)
    np.minimum.at(y0, comp, rows)
    np.maximum.at(x1, comp, cols + 1)
    np.maximum.at(y1, comp, rows + 1)
    np.maximum.at(peak, comp, ratio[rows, cols])
    keep = count >= params.min_pixels
    if params.min_area_m2 and pixel_area_m2:
        keep &= count * pixel_area_m2 >= params.min_area_m2
    score = 1.0 - 1.0 / np.maximum(peak, 1.0)
    out = np.stack([x0, y0, x1, y1, score, np.zeros(n)], axis=1)[keep]
    return out[np.argsort(-out[:, 4], kind="stable")]


class CfarDetector:
    """CA-CFAR as a detection backend: ``predict(raster, model=CfarDetector(CfarParams(...)))``,
    or ``model="cfar"`` for the defaults.

    Its :class:`ModelInfo` asks the engine for intensity (any units the scene is in are
    converted) of the first polarisation band, at the scene's own pixel size (CFAR windows are
    in pixels of the scene), and keeps every target by default (confidence 0: ``pfa`` is the
    operating point). Output ``detections`` [N, M, 6]: per tile, rows (x0, y0, x1, y1, score,
    class) in tile pixels, padded with NaN rows.
    """

    name = "cfar"
    tile_shape = None

    def __init__(self, params: CfarParams | None = None, tile: int = 512) -> None:
        self.params = params or CfarParams()
        self.providers = ["numpy"]
        # Overlap: a ship longer than half of it is merged across tiles, not cut (see
        # detection.merge_across_tiles); a background window fits in it.
        overlap = max(128, 2 * self.params.background)
        if tile <= overlap:
            raise ConfigError(f"CFAR tiles must be larger than {overlap} px, got {tile}")
        self.pixel_area_m2: float | None = None
        self.info = ModelInfo(
            task="detection",
            class_names=["ship"],
            units="intensity",
            polarisations=["VV"],
            looks=float(self.params.looks),
            resolution_m=None,
            tile_size=tile,
            tile_overlap=overlap,
            patch_size=1,
            det_confidence=0.0,
            det_iou_threshold=0.3,
            name=CFAR_NAME,
            training_data="none: CA-CFAR is not learned",
            outputs=["detections"],
        )

    def set_pixel_size(self, pixel_size_m: tuple[float, float] | None) -> None:
        """The scene's pixel size (x, y) in metres, for ``min_area_m2`` (None: pixel space)."""
        self.pixel_area_m2 = abs(pixel_size_m[0] * pixel_size_m[1]) if pixel_size_m else None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        per_tile = [cfar_detect(t[0], self.params, self.pixel_area_m2) for t in batch]
        m = max([len(d) for d in per_tile] + [1])
        out = np.full((len(batch), m, 6), np.nan)
        for i, d in enumerate(per_tile):
            out[i, : len(d)] = d
        return {"detections": out}

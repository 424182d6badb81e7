"""SAR speckle model (SARE) and the equivalent-number-of-looks estimator.

Fully developed speckle on L-look intensity is multiplicative: ``I = X * n`` with
``n ~ Gamma(shape=L, scale=1/L)`` (mean 1, variance 1/L). In amplitude the factor is ``sqrt(n)``;
in dB it is additive, ``10 log10 n``. The standard deviation of log-speckle is
``sqrt(trigamma(L))``: the authors' noise levels sigma in [0, 0.7] correspond to L from infinity
down to about 2.5 looks, which is how the default range of synthetic looks is chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import units as U
from .errors import ConfigError, InputError


def trigamma(x: float) -> float:
    """psi'(x) for x > 0: recurrence up to x >= 6, then the asymptotic series."""
    if x <= 0:
        raise ValueError("trigamma needs x > 0")
    acc = 0.0
    while x < 6.0:
        acc += 1.0 / (x * x)
        x += 1.0
    x2 = 1.0 / (x * x)
    series = 1.0 / x + x2 / 2 + (1.0 / x) * x2 * (1 / 6 - x2 * (1 / 30 - x2 * (1 / 42 - x2 / 30)))
    return acc + series


def log_speckle_std(looks: float) -> float:
    """Std of ln(n) for n ~ Gamma(L, 1/L): sqrt(trigamma(L)); 0 for infinitely many looks."""
    return 0.0 if math.isinf(looks) else math.sqrt(trigamma(looks))


def looks_from_log_std(sigma: float) -> float:
    """Inverse of :func:`log_speckle_std`: the number of looks whose log-speckle std is sigma."""
    if sigma <= 0:
        return math.inf
    lo, hi = 1e-3, 1e7  # trigamma is monotone decreasing: bisect on a log scale
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if log_speckle_std(mid) > sigma:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def gamma_speckle(
    shape: tuple[int, ...] | torch.Size,
    looks: torch.Tensor | float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Multiplicative intensity speckle n ~ Gamma(L, 1/L), one L per leading (batch) index.

    ``looks`` is a scalar or holds one value per leading index (e.g. ``[N, 1, 1, 1]``);
    infinite looks give n = 1 exactly. Drawn by numpy's float32 Gamma sampler, seeded from
    torch's RNG (``generator``, else the global one), so torch's seed and RNG state still decide
    the draw (exact resume, reproducible tests): it is about twice as fast as torch's
    ``_standard_gamma`` on the CPU, which cost SARE most of its share of a pretraining step.
    """
    shape = tuple(int(d) for d in shape)
    per = torch.as_tensor(looks, dtype=torch.float64).reshape(-1)
    lead = shape[0] if shape else 1
    if per.numel() == 1:
        per = per.expand(lead)
    if per.numel() != lead:
        raise InputError(f"looks holds {per.numel()} values for {lead} leading indices")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    out = np.ones((lead, *shape[1:]), dtype=np.float32)
    for i, L in enumerate(per.tolist()):
        if math.isfinite(L):
            rng.standard_gamma(L, size=out.shape[1:], dtype=np.float32, out=out[i])
            out[i] /= np.float32(L)
    n = torch.from_numpy(out.reshape(shape))
    return n.to(device) if device is not None else n


def apply_speckle(x: torch.Tensor, speckle: torch.Tensor, units: str) -> torch.Tensor:
    """Corrupt ``x`` (in ``units``) with intensity speckle factors ``speckle``, in its own domain.

    intensity: x * n; amplitude: x * sqrt(n); dB: x + 10 log10(n).
    """
    U.check_units(units)
    if units == "intensity":
        return x * speckle
    if units == "amplitude":
        return x * speckle.sqrt()
    return x + U.intensity_to_db(speckle)


@dataclass
class SpeckleConfig:
    """SARE: speckle on the encoder input only.

    Attributes:
        p: probability that an image gets extra speckle (the authors: 0.5).
        min_looks: the noisiest synthetic speckle (default 2.5 looks, log-std about 0.7 as the
            authors' sigma_max).
        max_looks: the mildest (``inf`` means the drawn level can be no noise at all).
        enabled: switch SARE off without touching the other values.
    """

    p: float = 0.5
    min_looks: float = 2.5
    max_looks: float | None = math.inf
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.max_looks is None:  # JSON has no infinity: null stands for "no upper limit"
            self.max_looks = math.inf
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"speckle probability p must be in [0, 1], got {self.p}")
        if not 0 < self.min_looks <= self.max_looks:
            raise ConfigError(
                f"need 0 < min_looks <= max_looks, got {self.min_looks} and {self.max_looks}"
            )


class SpeckleAugment(torch.nn.Module):
    """Draws one synthetic number of looks per image and multiplies in Gamma speckle.

    The level is drawn uniformly in log-speckle std between ``max_looks`` and ``min_looks``,
    which matches the authors' sigma ~ U(0, 0.7) while keeping the physically correct,
    mean-preserving Gamma model. The clean image stays the reconstruction target.
    """

    def __init__(self, config: SpeckleConfig, units: str) -> None:
        super().__init__()
        U.check_units(units)
        self.config = config
        self.units = units
        self.sigma_lo = log_speckle_std(config.max_looks)
        self.sigma_hi = log_speckle_std(config.min_looks)

    def draw_looks(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """[n] synthetic looks; ``inf`` for images left clean."""
        u = torch.rand(n, generator=generator)
        sigma = self.sigma_lo + (self.sigma_hi - self.sigma_lo) * torch.rand(n, generator=generator)
        looks = torch.tensor([looks_from_log_std(float(s)) for s in sigma])
        return torch.where(u < self.config.p, looks, torch.full_like(looks, math.inf))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, C, H, W] in ``units`` -> (speckled x, looks [N])."""
        if not self.config.enabled or self.config.p == 0:
            return x, torch.full((x.shape[0],), math.inf)
        looks = self.draw_looks(x.shape[0], generator)
        # Gamma draws only for the images that get speckle (a fraction p of the batch): drawing
        # for all and multiplying the clean ones by 1 cost pretraining ~6 % of its step time.
        hit = torch.isfinite(looks).nonzero().flatten()
        if hit.numel() == 0:
            return x, looks
        n = gamma_speckle(
            (hit.numel(), *x.shape[1:]), looks[hit].view(-1, 1, 1, 1), generator, device=x.device
        )
        hit = hit.to(x.device)
        out = x.clone()
        out[hit] = apply_speckle(x[hit], n.to(x.dtype), self.units)
        return out, looks


def estimate_enl(
    image: np.ndarray | torch.Tensor,
    units: str = "intensity",
    window: int | None = None,
    homogeneous_fraction: float = 0.1,
) -> float:
    """Equivalent number of looks, mean^2 / variance of intensity.

    With ``window=None`` the whole array is taken as one homogeneous area (synthetic speckle,
    a region picked by hand). With a window size, the image is cut into non-overlapping windows
    and the ENL is the median over the most homogeneous ``homogeneous_fraction`` of them, the
    usual way to measure ENL on real scenes, where texture and edges would otherwise pull the
    estimate down. Windows are ranked on one half of their pixels (a checkerboard) and measured
    on the other half: ranking and measuring on the same pixels would favour windows whose
    speckle happened to be weak and overestimate the ENL.

    Args:
        image: 2-D array (or any shape when ``window`` is None) in ``units``; complex input is
            taken as SLC samples.
        units: ``intensity``, ``amplitude``, ``db`` or ``complex``.
        window: window side in pixels (16 is a good default for single-look data), or None.
        homogeneous_fraction: share of windows kept as homogeneous.
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if np.iscomplexobj(arr):
        units = "complex"
    intensity = np.asarray(U.convert(arr, units, "intensity"), dtype=np.float64)
    if window is None:
        intensity = intensity[np.isfinite(intensity)]
        var = intensity.var()
        if intensity.size < 2 or var == 0:
            raise InputError("ENL needs at least two distinct finite values")
        return float(intensity.mean() ** 2 / var)
    if intensity.ndim != 2:
        raise InputError(f"windowed ENL needs a 2-D image, got shape {intensity.shape}")
    if window < 4:
        raise InputError(f"ENL window must be at least 4 pixels, got {window}")
    h, w = (s // window * window for s in intensity.shape)
    if h == 0 or w == 0:
        raise InputError(f"image {intensity.shape} is smaller than one {window}px window")
    blocks = intensity[:h, :w].reshape(h // window, window, w // window, window)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(-1, window, window)
    blocks = blocks[np.isfinite(blocks).all(axis=(1, 2))]
    yy, xx = np.mgrid[:window, :window]
    black = (yy + xx) % 2 == 0
    rank_half, measure_half = blocks[:, black], blocks[:, ~black]  # [B, window^2 / 2] each
    rank_mean = rank_half.mean(1)
    ok = rank_mean > 0
    if not ok.any():
        raise InputError("ENL needs windows with positive intensity")
    cv = rank_half[ok].std(1, ddof=1) / rank_mean[ok]
    keep = np.argsort(cv)[: max(1, round(homogeneous_fraction * cv.size))]
    sample = measure_half[ok][keep]
    mean, var = sample.mean(1), sample.var(1, ddof=1)
    return float(np.median(mean**2 / np.maximum(var, np.finfo(np.float64).tiny)))

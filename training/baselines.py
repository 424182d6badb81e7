"""Non-learned baselines that fine-tuned models are reported beside.

Otsu water: open water is a specular reflector and the darkest surface in C-band VV, so a
per-tile Otsu threshold on VV (dark class = water) is the classic unsupervised water map.
It fails on tiles without water (Otsu always splits in two), which is part of what it shows.

dB mixture: two Gaussians per scene (HydroSAR, GFM), unsupervised or seeded by a model's
probability; :mod:`.heldout` reports it, and its average with the model, as an ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_otsu


def otsu_water(vv: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Water mask (1 = water) of one tile by Otsu's threshold on ``vv``.

    Args:
        vv: [H, W] backscatter in any units that grow with brightness (dB, amplitude,
            intensity, or 8-bit DN).
        valid: [H, W] pixels to compute the threshold on (None: all finite pixels).

    Returns:
        uint8 [H, W]: 1 where ``vv`` is below the threshold (only on valid pixels).
    """
    valid = np.isfinite(vv) if valid is None else (valid & np.isfinite(vv))
    values = vv[valid]
    if values.size == 0 or values.min() == values.max():
        return np.zeros(vv.shape, np.uint8)  # nothing to split
    t = threshold_otsu(values)
    return ((vv < t) & valid).astype(np.uint8)


@dataclass(frozen=True)
class DbMixture:
    """Two Gaussians fitted to one scene's backscatter in dB: water (the darker) and land.

    The scene-adaptive split of HydroSAR and the Global Flood Monitoring service: each scene
    gets its own water and land distributions instead of one fixed threshold.
    """

    water_mean: float
    water_std: float
    land_mean: float
    land_std: float
    water_share: float

    def posterior(self, db: np.ndarray) -> np.ndarray:
        """P(water | dB), monotone: values beyond either mean count as that mean (with unequal
        widths, the wider Gaussian would otherwise win again far out on the dark side, and
        the darkest pixels would not be water). NaN stays NaN."""
        return self._responsibility(np.clip(db, self.water_mean, self.land_mean))

    def _responsibility(self, db: np.ndarray) -> np.ndarray:
        """The mixture's own posterior of the first component (the EM step)."""

        def log_density(mean: float, std: float) -> np.ndarray:
            return -0.5 * ((db - mean) / std) ** 2 - np.log(std)

        lw = log_density(self.water_mean, self.water_std) + np.log(self.water_share)
        ll = log_density(self.land_mean, self.land_std) + np.log1p(-self.water_share)
        return 1.0 / (1.0 + np.exp(np.clip(ll - lw, -50, 50)))


def db_mixture(
    db: np.ndarray, water: np.ndarray | None = None, iterations: int = 50
) -> DbMixture | None:
    """EM fit of :class:`DbMixture` to the finite values of ``db``.

    Args:
        db: backscatter values in dB (any shape).
        water: the starting water responsibility of each value (e.g. a model's water
            probability, so the fit knows which dark mode is water even where water is a few
            percent of the scene); None starts from Otsu's split, the unsupervised form.
        iterations: EM steps.

    Returns:
        The mixture, or None when the values cannot be split (fewer than 2 distinct values).
    """
    x = np.asarray(db, np.float64).ravel()
    keep = np.isfinite(x)
    x = x[keep]
    if x.size < 2 or x.min() == x.max():
        return None
    if water is None:
        r = (x < threshold_otsu(x)).astype(np.float64)
    else:
        r = np.clip(np.asarray(water, np.float64).ravel()[keep], 0.0, 1.0)
    # Speckle keeps every real class at least ~1 dB wide (even at 20 looks); without a floor,
    # a spike of clipped values (8-bit DN 0) draws one Gaussian to zero width (EM degeneracy)
    floor = 1.0
    for _ in range(iterations):
        sw, sl = r.sum(), (1 - r).sum()
        if sw < 1 or sl < 1:
            return None  # one class holds (almost) everything: nothing to split
        mw, ml = (r * x).sum() / sw, ((1 - r) * x).sum() / sl
        fit = DbMixture(
            float(mw), float(max(np.sqrt((r * (x - mw) ** 2).sum() / sw), floor)),
            float(ml), float(max(np.sqrt(((1 - r) * (x - ml) ** 2).sum() / sl), floor)),
            float(sw / x.size),
        )  # fmt: skip
        r = fit._responsibility(x)
    if fit.water_mean > fit.land_mean:  # the fit swapped the modes: water is the dark one
        fit = DbMixture(fit.land_mean, fit.land_std, fit.water_mean, fit.water_std,
                        1 - fit.water_share)  # fmt: skip
    return fit

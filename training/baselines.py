"""Non-learned baselines that fine-tuned models are reported beside.

Otsu water: open water is a specular reflector and the darkest surface in C-band VV, so a
per-tile Otsu threshold on VV (dark class = water) is the classic unsupervised water map.
It fails on tiles without water (Otsu always splits in two), which is part of what it shows.
"""

from __future__ import annotations

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

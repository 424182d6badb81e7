"""``python -m sarmae_train.speckle_stats``: SARE's speckle beside the speckle the data carry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sarmae_core.speckle import gamma_speckle
from sarmae_train.speckle_stats import combined_looks, main, source_enl
from tests.conftest import S1_VV_DB


@pytest.mark.parametrize(("native", "synthetic"), [(1.0, 2.5), (4.0, 2.5), (40.0, 8.0)])
def test_speckle_on_speckle_has_the_looks_of_the_product(native, synthetic):
    torch.manual_seed(0)
    # a homogeneous area of `native` looks, measured on 16 px windows as the tool does
    image = gamma_speckle((1, 256, 256), native).numpy()
    (before,) = source_enl([image], "intensity", window=16)
    (after,) = source_enl([image], "intensity", window=16, looks=synthetic, seed=1)
    assert before == pytest.approx(native, rel=0.15)
    assert after == pytest.approx(combined_looks(native, synthetic), rel=0.15)
    assert after < min(native, synthetic)  # more speckle than either factor alone


def test_combined_looks_limits():
    assert combined_looks(1e12, 3.0) == pytest.approx(3.0)  # a clean image gets what SARE adds
    assert combined_looks(2.0, 2.0) == pytest.approx(1 / 1.25)


def test_real_scene_source_measured_before_and_after_sare(tmp_path, capsys):
    cfg = tmp_path / "pretrain.yaml"
    cfg.write_text(
        "model: {preset: sarmae_test, img_size: 128}\n"
        f"data:\n  root: {S1_VV_DB.parent}\n  sources:\n"
        f"    - {{kind: rasters, paths: [{S1_VV_DB.name}], units: {{units: db}}, "
        "windows_per_epoch: 16}\n"
    )
    out = tmp_path / "stats.json"
    r = main(["--config", str(cfg), "--samples", "6", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    (row,) = r["sources"]
    assert row["samples"] == 6 and row["share"] == 1.0
    native = row["native_enl"]["median"]
    # the committed scene is multi-looked Sentinel-1 GRD: several looks, not single-look speckle
    assert 2 < native < 30
    noisiest, median = row["sare_noisiest"], row["sare_median"]
    assert noisiest["looks"] == 2.5 and median["looks"] > noisiest["looks"]
    assert noisiest["enl"]["median"] < median["enl"]["median"] < native
    for level in (noisiest, median):
        assert level["enl"]["median"] == pytest.approx(level["expected_enl"], rel=0.2)
    printed = capsys.readouterr().out
    assert "| rasters " in printed and "synthetic looks 2.5" in printed
    assert np.isfinite(float(printed.strip().splitlines()[-1].split("|")[-2]))

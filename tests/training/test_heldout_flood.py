"""``python -m sarmae_train.heldout_flood``: flood as change on real OMBRIA test pairs, a two-date
model beside a water model used on each date, Otsu, log-ratio change detection and oracles."""

from __future__ import annotations

import json

import pytest

from sarmae_train.heldout_flood import main

from .conftest import needs_shared_data

pytestmark = needs_shared_data


@pytest.fixture(scope="module")
def flood_onnx(tmp_path_factory):
    """An untrained two-date (before, after) model exported as onnxruntime runs it."""
    import torch

    from sarmae_core.config import SarDataConfig
    from sarmae_core.export.onnx import export_onnx
    from sarmae_core.models.heads import SegmentationModel
    from sarmae_core.models.registry import make_config

    torch.manual_seed(0)
    cfg = make_config("sarmae_test", data=SarDataConfig(
        polarisations=["VV", "VV"], dates=["before", "after"], resolution=10.0,
        normalization={"mean": [-12.0, -12.0], "std": [5.0, 5.0]},
    ))  # fmt: skip
    model = SegmentationModel(cfg, 2, class_names=["background", "flood"]).eval()
    path = tmp_path_factory.mktemp("flood") / "flood.onnx"
    export_onnx(model, path, tile_size=256, name="flood")
    return path


def test_flood_pairs_scored_beside_the_change_baselines(tmp_path, capsys, flood_onnx):
    out = tmp_path / "flood.json"
    main([
        "--config", "training/configs/finetune_flood_bundled.yaml", "--limit", "3",
        "--flood-model", f"untrained={flood_onnx}", "--water-model", "water",
        "--out", str(out),
    ])  # fmt: skip
    r = json.loads(out.read_text())
    assert r["pairs"] == 3 and 0 < r["flood_fraction"] < 1
    m = r["flood_models"]["untrained"]
    assert 0 <= m["water_iou"] <= 1 and m["threshold"] == 0.5
    # the operating point: IoU at thresholds 0.05 ... 0.95, the best of them at its maximum
    at = {float(k): v for k, v in m["iou_at_threshold"].items() if v is not None}
    assert len(m["iou_at_threshold"]) == 19 and m["best_threshold"] in at
    assert at[m["best_threshold"]] == max(at.values())
    assert 0 <= r["water_models"]["water"]["water_iou"] <= 1
    # the oracles pick the best single threshold on these very pixels
    oracle = r["oracle_log_ratio"]["water_iou"]
    assert oracle >= r["log_ratio_otsu_per_split"]["water_iou"] - 1e-9
    assert r["oracle_after"]["water_iou"] >= r["otsu_after_per_split"]["water_iou"] - 1e-9
    assert r["oracle_log_ratio"]["threshold"] < 0  # flood darkens: after - before < 0 dB
    printed = capsys.readouterr().out
    assert "| untrained (two-date model, threshold 0.5) |" in printed and "log-ratio" in printed


def test_a_single_date_model_is_refused_as_a_flood_model(tmp_path):
    from sarmae_core.inference.model.backends import BUNDLED_DIR

    with pytest.raises(SystemExit, match="not a two-date model"):
        main(["--config", "training/configs/finetune_flood_bundled.yaml", "--limit", "1",
              "--flood-model", f"w={BUNDLED_DIR / 'water.onnx'}", "--out",
              str(tmp_path / "x.json")])  # fmt: skip

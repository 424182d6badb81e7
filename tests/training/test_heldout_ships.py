"""Held-out ship scores through ``predict`` (python -m sarmae_train.heldout_ships) and the CA-CFAR
row of ``sarmae-train evaluate``, on the real held-out HRSID scenes."""

from __future__ import annotations

import json

import numpy as np

from sarmae_train.config import FinetuneRunConfig, load_config
from sarmae_train.heldout_ships import describe_hulls, main, run

from .conftest import SHARED_DATA, needs_shared_data

CONFIG = "training/configs/finetune_ships_bundled.yaml"


@needs_shared_data
def test_cfar_on_the_held_out_scenes_per_scene_type(tmp_path, capsys):
    cfg = load_config(FinetuneRunConfig, CONFIG, [f"data.root={SHARED_DATA}"])
    result = run(cfg, {"cfar": "cfar"}, pixel_size=1.0, floor=0.01)
    assert result["tiles"] == 6 and all(i.startswith(("P0007", "P0015")) for i in result["images"])
    scores = result["models"]["cfar"]["scores"]
    assert set(scores) == {"all", "offshore", "inshore"}
    assert scores["offshore"]["images"] + scores["inshore"]["images"] == 6
    c = scores["all"]["counts_at_threshold"]
    assert c["objects"] == 10 and c["threshold"] == 0.0 and c["found"] >= 4 and c["false"] > 10
    assert 0.1 < scores["all"]["AP50"] < 0.8
    out = tmp_path / "ships.json"
    main(["--config", CONFIG, "--model", "cfar=cfar", "--out", str(out),
          f"data.root={SHARED_DATA}"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| offshore (5 tiles, 9 ships) | cfar |" in printed
    assert json.loads(out.read_text())["models"]["cfar"]["default_threshold"] == 0.0


def test_describe_hulls_says_what_the_offshore_picture_shows():
    reference = np.array(
        [[100, 100, 185, 120, 0], [400, 300, 471, 318, 0], [600, 600, 620, 610, 0]]
    )
    boxes = np.array([[100, 100, 158, 120], [150, 100, 185, 120], [400, 300, 459, 318]], float)
    text = describe_hulls(boxes, reference)
    assert text == (
        "the 85 px hull has 2 boxes, the best 58 px long (IoU 0.68, found); "
        "the 71 px hull has one box, the best 59 px long (IoU 0.83, found); "
        "the 20 px hull has no box"
    )
    assert describe_hulls(boxes[:0], reference[:1]) == "the 85 px hull has no box"
    assert "short of counting" in describe_hulls(np.array([[100, 100, 140, 120.0]]), reference[:1])


@needs_shared_data
def test_crop_stats_on_hrsid_show_object_crops_holding_ships(capsys):
    from sarmae_train.crop_stats import crop_stats
    from sarmae_train.crop_stats import main as crop_main

    over = [f"data.root={SHARED_DATA}"]
    uniform = crop_stats(load_config(FinetuneRunConfig, CONFIG, over), epochs=2)
    placed = crop_stats(
        load_config(FinetuneRunConfig, CONFIG, [*over, "data.augment.object_crop=1"]), epochs=2
    )
    assert uniform["crops"] == placed["crops"] == 60  # 30 training tiles, twice
    assert uniform["holding_a_box"] < 0.5 < placed["holding_a_box"] == 1.0
    assert placed["whole_per_crop"] > 2 * uniform["whole_per_crop"]
    crop_main(["--config", CONFIG, "--epochs", "1", *over])
    assert capsys.readouterr().out.startswith("object_crop 0: 30 crops, ")


def test_multilook_averages_intensity_in_blocks():
    from sarmae_train.heldout_ships import multilook

    a = np.array([[1, 1, 3, 3, 9], [1, 1, 3, 3, 9], [2, 2, 0, 0, 9]], np.float32)
    np.testing.assert_allclose(multilook(a, 2), [[1, 3]])  # the odd row and column dropped
    np.testing.assert_allclose(multilook(np.array([[0, 2], [0, 0]], np.float32), 2), [[1]])
    assert multilook(a, 1) is a


def test_zoom_in_keeps_targets_on_their_pixels():
    from sarmae_train.heldout_ships import zoom_in

    a = np.full((5, 6), 0.1, np.float32)
    a[2, 3] = 1.0  # a point target
    fine = zoom_in(a, 2)
    assert fine.shape == (10, 12)
    w = np.square(fine, dtype=np.float64) - 0.01
    rows, cols = np.indices(w.shape)
    # its centre, in continuous pixel coordinates, halves to the input's (2.5, 3.5)
    centre = ((w * (rows + 0.5)).sum() / w.sum(), (w * (cols + 0.5)).sum() / w.sum())
    np.testing.assert_allclose(np.array(centre) / 2, [2.5, 3.5])
    np.testing.assert_allclose(zoom_in(np.full((3, 3), 2, np.float32), 2), 2)  # flat stays flat
    assert zoom_in(a, 1) is a


@needs_shared_data
def test_coarser_pixels_are_scored_on_the_reference_boxes():
    cfg = load_config(FinetuneRunConfig, CONFIG, [f"data.root={SHARED_DATA}"])
    fine = run(cfg, {"cfar": "cfar"}, pixel_size=1.0, floor=0.01)
    coarse = run(cfg, {"cfar": "cfar"}, pixel_size=1.0, floor=0.01, looks=2)
    assert (coarse["looks"], coarse["pixel_size_m"]) == (2, 2.0)
    c = coarse["models"]["cfar"]["scores"]["all"]["counts_at_threshold"]
    # boxes found at 2 m land on the 1 m reference (unscaled, they would sit at half the
    # coordinates and match nothing)
    assert c["objects"] == 10 and c["found"] >= 3
    assert c["false"] < fine["models"]["cfar"]["scores"]["all"]["counts_at_threshold"]["false"]


@needs_shared_data
def test_finer_pixels_are_scored_on_the_reference_boxes():
    # the bundled model on three held-out tiles interpolated to 0.5 m (inside its 0.5-3 m)
    cfg = load_config(FinetuneRunConfig, CONFIG, [f"data.root={SHARED_DATA}", "data.max_test=3"])
    fine = run(cfg, {"ships": "ships"}, pixel_size=1.0, floor=0.01, zoom=2)
    assert (fine["zoom"], fine["pixel_size_m"]) == (2, 0.5)
    c = fine["models"]["ships"]["scores"]["all"]["counts_at_threshold"]
    # unscaled, the boxes would sit at twice the coordinates and match nothing
    assert c["objects"] == 4 and c["found"] >= 2


@needs_shared_data
def test_the_training_evaluation_fits_boxes_to_hulls_as_predict_does():
    """``sarmae-train evaluate`` scores what predict gives (``eval.boxes: hull``, the default):
    a CenterNet box on the first half of the offshore tile's 85 px hull, as the model's heads
    would decode it, is fitted to the whole hull; ``eval.boxes: model`` keeps it."""
    import pytest
    import torch

    from sarmae_core.errors import ConfigError
    from sarmae_core.inference.model.detection import box_iou
    from sarmae_train.config import EvalConfig
    from sarmae_train.evaluate import decode_batch
    from tests.inference.test_cfar import OFFSHORE_SHIPS
    from tests.inference.test_hull_boxes import offshore_amplitude

    db = 20 * np.log10(offshore_amplitude())[None, None]  # [1, 1, 800, 800]
    truth = np.array(OFFSHORE_SHIPS[0], np.float64)  # the 85 px hull, from its mask
    heat, size, offset = (
        torch.zeros(1, 1, 200, 200),
        torch.zeros(1, 2, 200, 200),
        torch.zeros(1, 2, 200, 200),
    )
    cy, cx = 28 // 4, 470 // 4  # a half-length box centred on the first half of the hull
    heat[0, 0, cy, cx], size[0, :, cy, cx] = 0.9, torch.tensor([44.0, 16.0])
    out = {"heatmap": heat, "size": size, "offset": offset}
    ious = {}
    for mode in ("model", "hull"):
        ((b, s, _),) = decode_batch(out, EvalConfig(boxes=mode), 800, db, [(800, 800)], "db")
        assert len(b) == 1 and s[0] == pytest.approx(0.9)
        ious[mode] = box_iou(truth, b)[0]
    assert ious["model"] < 0.5 and ious["hull"] >= 0.75
    with pytest.raises(ConfigError, match=r"eval\.boxes must be one of hull, model"):
        EvalConfig(boxes="tight")

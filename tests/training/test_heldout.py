"""``python -m sarmae_train.heldout``: a water model through ``predict`` on real held-out tiles,
beside Otsu per tile, per scene and the oracle threshold; and the model card's table of it."""

from __future__ import annotations

import json

import numpy as np

from sarmae_train.heldout import main

from .conftest import needs_shared_data

pytestmark = needs_shared_data


def test_bundled_water_model_on_held_out_etci_tiles_through_predict(tmp_path, capsys):
    import pytest

    out = tmp_path / "etci.json"
    main([
        "--config", "training/configs/finetune_water_bundled.yaml", "--pixel-size", "20",
        "--model", "water", "--limit", "3", "--out", str(out),
    ])  # fmt: skip
    r = json.loads(out.read_text())
    assert r["tiles"] == 3 and r["pixel_size_m"] == 20.0
    m = r["models"]["water"]
    assert 0 <= m["water_iou"] <= 1 and 0 < m["pixels"] <= 3 * 256 * 256
    # the oracle picks the best threshold on these very pixels: no threshold beats it
    oracle = r["oracle_threshold"]["water_iou"]
    assert oracle >= r["otsu_per_scene"]["water_iou"] - 1e-9
    assert oracle >= r["otsu_per_tile"]["water_iou"] - 1e-9
    assert -30 < r["oracle_threshold"]["threshold"] < 0  # dB
    assert sum(b["pixels"] for b in m["reliability"]) == m["pixels"]
    assert np.isfinite(m["ece"]) and set(m["iou_at_threshold"]) >= {"0.3", "0.5", "0.7"}
    # the physics-based ablation: the scene's dB mixture, alone and with the model
    assert r["mixture_per_scene"]["fit"]["water_mean"] < r["mixture_per_scene"]["fit"]["land_mean"]
    ab = r["mixture_ablation"]["water"]
    assert 0 <= ab["guided"]["water_iou"] <= 1 and 0 <= ab["fused"]["water_iou"] <= 1
    assert ab["fused"]["pixels"] == m["pixels"]
    printed = capsys.readouterr().out
    assert "| Otsu per tile | Otsu per scene | oracle |" in printed and "ECE" in printed
    assert "with the scene's dB mixture (ablation)" in printed
    # where the reference's water lies in the model's probability: the bands cover all of it
    found = r["reference_water_by_probability"]["water"]
    assert sum(b["share"] for b in found["bands"]) == pytest.approx(1.0)
    assert "water: the reference's water by the model's probability, 0-0.1: " in printed


def test_vv_vh_model_gets_both_bands_named_as_predict_reads_them(tmp_path):
    """The VV+VH split is written as a 2-band tile described VV, VH: predict runs the VV+VH
    model on it (not the VV model on band 1)."""
    import rasterio

    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.heldout import polarisations, run

    def config(name: str) -> FinetuneRunConfig:
        return load_config(FinetuneRunConfig, f"training/configs/{name}.yaml", [])

    cfg = config("finetune_water_vvvh_bundled")
    assert polarisations(cfg) == ("VV", "VH")
    assert polarisations(config("finetune_water_bundled")) == ("VV",)
    r = run(cfg, {"vvvh": "water_vvvh"}, 20.0, limit=2)
    assert r["tiles"] == 2 and 0 < r["models"]["vvvh"]["water_iou"] <= 1
    from sarmae_train.heldout import write_tile

    tif = write_tile(tmp_path / "t.tif", np.full((2, 8, 8), -20.0), 20.0, ("VV", "VH"))
    with rasterio.open(tif) as src:
        assert src.count == 2 and src.descriptions == ("VV", "VH")


def test_model_card_table_of_held_out_runs(tmp_path):
    from sarmae_train.model_card import heldout_table

    run = {
        "tiles": 3, "pixel_size_m": 20.0,
        "models": {"water": {"water_iou": 0.61, "ece": 0.05,
                             "iou_at_threshold": {"0.3": 0.58, "0.5": 0.61, "0.7": 0.55}}},
        "otsu_per_tile": {"water_iou": 0.2}, "otsu_per_scene": {"water_iou": 0.3},
        "oracle_threshold": {"water_iou": 0.5, "threshold": -17.25},
    }  # fmt: skip
    lines = heldout_table([("ETCI Nebraska", run)], 0.5)
    assert (
        lines[2]
        == "| ETCI Nebraska (3 tiles at 20 m) | 61.0 | 20.0 | 30.0 | 50.0 (VV < -17.2 dB) |"
    )
    assert "| ETCI Nebraska | `water` | 0.050 | 58.0 | n/a | 61.0 | n/a | 55.0 |" in lines
    # at the threshold the bundled model ships with, not the one each file was exported with
    assert heldout_table([("ETCI Nebraska", run)], 0.3)[2].startswith(
        "| ETCI Nebraska (3 tiles at 20 m) | 58.0 |"
    )


def test_a_checkpoint_runs_on_the_tiles_it_is_given(tmp_path):
    """``--tile`` (a comparison of tile sizes on a fine-tuned checkpoint) reaches predict: a
    tile that is no multiple of the model's patch is refused by predict's own rule."""
    import pytest

    from sarmae_core.errors import ConfigError
    from sarmae_core.models import make_config, save_checkpoint
    from sarmae_core.models.heads import build_task_model

    model = build_task_model("segmentation", make_config("sarmae_test"), 2,
                             class_names=["background", "water"])  # fmt: skip
    ckpt = save_checkpoint(model, tmp_path / "water.safetensors")
    args = ["--config", "training/configs/finetune_water_bundled.yaml", "--pixel-size", "20",
            "--model", f"tiny={ckpt}", "--limit", "1"]  # fmt: skip
    with pytest.raises(ConfigError, match="tile 120 px is not a multiple"):
        main([*args, "--tile", "120", "--out", str(tmp_path / "bad.json")])
    main([*args, "--tile", "128", "--out", str(tmp_path / "t.json")])
    assert json.loads((tmp_path / "t.json").read_text())["tiles"] == 1


def test_tiles_laid_out_as_their_scene_and_mapped_in_one_run(tmp_path, capsys):
    """``--scene``: the split's ETCI tiles go back to their columns and rows (gaps nodata) and
    each model maps that scene once; the thresholds score the same pixels as tile by tile."""
    import pytest

    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.heldout import SceneMaps, labelled_samples, run

    cfg = load_config(FinetuneRunConfig, "training/configs/finetune_water_bundled.yaml", [])
    ids: dict[int, str] = {}
    samples = list(labelled_samples(cfg, 6, ids))
    layout = SceneMaps(samples, ids, ("VV",))
    for i, image, _, known in samples:
        col, row = (int(v) for v in ids[i].rsplit("_x-", 1)[1].split("_y-"))
        y, x = layout.origin[i]
        assert (y % 256, x % 256) == (0, 0)  # on the scene's grid of 256 px tiles
        laid = layout.mosaic[0, y : y + 256, x : x + 256]
        assert np.array_equal(laid[known], image[0][known]) and np.isnan(laid[~known]).all()
        for j, (yj, xj) in layout.origin.items():  # the offsets keep the names' order
            cj, rj = (int(v) for v in ids[j].rsplit("_x-", 1)[1].split("_y-"))
            assert (yj - y, xj - x) == ((rj - row) * 256, (cj - col) * 256)
    scene = run(cfg, {"water": "water"}, 20.0, limit=6, scene=True)
    tiles = run(cfg, {"water": "water"}, 20.0, limit=6)
    assert (scene["mapped"], tiles["mapped"]) == ("as one scene", "tile by tile")
    assert scene["oracle_threshold"] == tiles["oracle_threshold"]
    assert scene["models"]["water"]["pixels"] == tiles["models"]["water"]["pixels"]
    assert 0 < scene["models"]["water"]["water_iou"] <= 1
    ombria = load_config(FinetuneRunConfig, "training/configs/finetune_water_ombria.yaml", [])
    ombria_ids: dict[int, str] = {}
    ombria_samples = list(labelled_samples(ombria, 2, ombria_ids))
    with pytest.raises(SystemExit, match="needs tiles named <scene>_x-<col>_y-<row>"):
        SceneMaps(ombria_samples, ombria_ids, ("VV",))


def test_flip_averaged_model_is_the_mean_of_the_map_and_the_mirrored_map(tmp_path, capsys):
    """``--flip-average``: each model is scored once more, its probability the mean of its map
    of the tile and its map of the tile mirrored left to right (flipped back), classified at
    the model's own threshold."""
    from sarmae_core.contract.reader import read_model_info
    from sarmae_core.inference.model.backends import resolve_model_path
    from sarmae_core.models import make_config, save_checkpoint
    from sarmae_core.models.heads import build_task_model
    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.heldout import flip_averaged, labelled_samples, predict_maps, write_tile

    cfg = load_config(FinetuneRunConfig, "training/configs/finetune_water_bundled.yaml", [])
    _, image, _, known = next(labelled_samples(cfg, 1))
    db = np.where(known, image[0], np.nan)
    notes: set[str] = set()
    tif = write_tile(tmp_path / "t.tif", db, 20.0)
    mirror = write_tile(tmp_path / "m.tif", db[:, ::-1], 20.0)
    plain_maps = predict_maps(tif, "water", tmp_path / "plain.tif", None, notes)
    _, plain = plain_maps
    _, mirrored = predict_maps(mirror, "water", tmp_path / "mirror.tif", None, notes)
    pred, prob = flip_averaged(tif, "water", tmp_path / "avg.tif", None, notes, plain_maps)
    expected = 0.5 * (plain + mirrored[:, ::-1])
    assert np.allclose(prob, expected, equal_nan=True, atol=1e-6)
    assert not np.allclose(np.nan_to_num(plain), np.nan_to_num(prob))  # the mirror mattered
    threshold = read_model_info(resolve_model_path("water")).seg_threshold
    valid = pred != 255
    assert np.array_equal(pred[valid] == 1, np.nan_to_num(prob[valid]) >= threshold)

    # a checkpoint (a tiny untrained one, on 128 px tiles), at its threshold: the default 0.5
    model = build_task_model("segmentation", make_config("sarmae_test"), 2,
                             class_names=["background", "water"])  # fmt: skip
    ckpt = str(save_checkpoint(model, tmp_path / "tiny.safetensors"))
    tiles = {"tile": 128, "overlap": 32}
    ckpt_maps = predict_maps(tif, ckpt, tmp_path / "c0.tif", tiles, notes)
    pred, prob = flip_averaged(tif, ckpt, tmp_path / "c.tif", tiles, notes, ckpt_maps)
    valid = pred != 255
    assert np.array_equal(pred[valid] == 1, np.nan_to_num(prob[valid]) >= 0.5)

    out = tmp_path / "r.json"
    main(["--config", "training/configs/finetune_water_bundled.yaml", "--pixel-size", "20",
          "--model", "water", "--limit", "2", "--flip-average", "--out", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    assert list(r["models"]) == ["water", "water, flip-averaged"]
    both = r["models"].values()
    assert len({m["pixels"] for m in both}) == 1 and all(0 <= m["water_iou"] <= 1 for m in both)
    printed = capsys.readouterr().out
    assert "| water | water, flip-averaged | Otsu per tile" in printed


def test_bright_cut_takes_the_dyke_out_of_the_water_and_nothing_else():
    """The brightness ablation: inside the model's water, a 3 px dyke brighter than the land
    the model mapped goes; the dark water around it and the land stay as they were."""
    import pytest

    from sarmae_train.heldout import _bright_cut

    db = np.full((40, 40), -10.0)  # land
    db[5:35, 5:35] = -22.0  # a pond...
    db[:, 19:22] = -4.0  # ...with a bright dyke across it and on over the land
    water = np.zeros((40, 40), bool)
    water[5:35, 5:35] = True  # the model paints the dyke as water
    target = water.astype(np.uint8)
    target[5:35, 19:22] = 0  # the reference does not
    r = _bright_cut([(db, target)], [water], ["background", "water"])
    assert r["land_median_db"] == -10.0
    assert r["removed"] == pytest.approx(3 / 30)
    assert r["water_iou"] == 1.0  # exactly the reference's water is left


def test_reference_water_by_probability_tells_bright_misses_from_dark_ones():
    """The breakdown behind the held-out tables: of the reference's water, the part the model
    is sure is land and as bright as land (a river's sandbars) is told from the dark water it
    finds, by its share, median dB and share below the oracle threshold."""

    from sarmae_train.heldout import _water_by_probability, water_by_probability_line

    db = np.full((20, 20), -12.0)  # land
    db[:5] = -24.0  # open water, found
    db[5:10] = -8.0  # sandbars the reference draws as water, bright as land
    target = np.zeros((20, 20), np.uint8)
    target[:10] = 1
    target[19, :] = 255  # unlabelled: counted nowhere
    prob = np.full((20, 20), 0.02, np.float16)
    prob[:5] = 0.9
    prob[5:10] = 0.05
    prob[10] = 0.3  # land the model is unsure of: not the reference's water
    labelled = target != 255
    values, ref = db[labelled], target[labelled] == 1
    r = _water_by_probability([(db, target)], values, ref, [prob], -20.0)
    sure_land, unsure, water = r["bands"]
    assert (sure_land["share"], unsure["share"], water["share"]) == (0.5, 0.0, 0.5)
    assert sure_land["median_db"] == -8.0 and sure_land["below_oracle_threshold"] == 0.0
    assert water["median_db"] == -24.0 and water["below_oracle_threshold"] == 1.0
    assert unsure["median_db"] is None and r["land_median_db"] == -12.0
    line = water_by_probability_line("water", r)
    assert "0-0.1: 50.0 % (median -8.0 dB, 0.0 % below the oracle threshold)" in line
    assert "0.1-0.5: none" in line and line.endswith("the reference's land: median -12.0 dB")
    # without labels to choose an oracle threshold, the dark share is not made up
    assert (
        _water_by_probability([(db, target)], values, ref, [prob], None)["bands"][2][
            "below_oracle_threshold"
        ]
        is None
    )

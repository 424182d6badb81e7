"""``sarmae-train finetune`` / ``evaluate`` end to end on small slices of the real sets."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import sarmae_core
from sarmae_core.contract.metadata import ModelInfo
from sarmae_core.errors import ConfigError
from sarmae_core.inference.model.backends import load_backend
from sarmae_core.models import create_model, load_checkpoint, save_checkpoint
from sarmae_core.models.heads import ClassificationModel, DetectionModel, SegmentationModel

from .conftest import invoke, needs_shared_data

pytestmark = needs_shared_data

TINY = ["model.preset=sarmae_test", "run.num_workers=0", "run.threads=1", "run.log_every=1"]


@pytest.fixture(scope="module")
def sarmae_ckpt(tmp_path_factory):
    """A SARMAE checkpoint of the test preset (as pretraining writes it)."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("ckpt") / "sarmae.safetensors"
    return save_checkpoint(create_model("sarmae_test", in_chans=1), path)


def test_mstar_classification_from_a_sarmae_checkpoint(tmp_path, sarmae_ckpt):
    out = tmp_path / "mstar"
    r = invoke(
        "finetune",
        "--config",
        "finetune_mstar.yaml",
        "--init",
        str(sarmae_ckpt),
        "--out",
        str(out),
        *TINY,
        "data.shots_per_class=1",
        "data.max_test=20",
        "optim.epochs=1",
        "optim.batch_size=5",
        "optim.lr=0.0",
    )
    assert "classification: top-1" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 20 and 0.0 <= metrics["top1"] <= 1.0
    assert list(metrics["per_class_accuracy"]) == [
        "2S1",
        "BMP2",
        "BRDM2",
        "BTR60",
        "BTR70",
        "D7",
        "T62",
        "T72",
        "ZIL131",
        "ZSU234",
    ]
    assert (
        len(metrics["confusion_matrix"]) == 10 and sum(map(sum, metrics["confusion_matrix"])) == 20
    )
    assert metrics["train_samples"] == 10  # one shot per class
    model = load_checkpoint(out / "model.safetensors")
    assert isinstance(model, ClassificationModel) and model.class_names[0] == "2S1"
    # lr 0: the encoder is exactly the pretrained one, so the init really was loaded
    ref = load_checkpoint(sarmae_ckpt).encoder.state_dict()
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_linear_probe_leaves_the_encoder_untouched(tmp_path, sarmae_ckpt):
    out = tmp_path / "probe"
    invoke(
        "finetune",
        "--config",
        "finetune_mstar.yaml",
        "--init",
        str(sarmae_ckpt),
        "--out",
        str(out),
        *TINY,
        "model.linear_probe=true",
        "data.shots_per_class=1",
        "data.max_test=4",
        "optim.epochs=2",
        "optim.batch_size=5",
        "optim.lr=1e-2",
    )
    model = load_checkpoint(out / "model.safetensors")
    assert model.linear_probe
    init = load_checkpoint(sarmae_ckpt)
    assert all(
        torch.equal(v, init.encoder.state_dict()[k]) for k, v in model.encoder.state_dict().items()
    )


def test_etci_water_segmentation_with_otsu_baseline_and_evaluate(tmp_path):
    out = tmp_path / "etci"
    invoke(
        "finetune",
        "--config",
        "finetune_water_etci.yaml",
        "--out",
        str(out),
        *TINY,
        "data.max_train=4",
        "data.max_test=2",
        "data.crop=64",
        "optim.epochs=1",
        "optim.batch_size=2",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "segmentation" and m["positive_class"] == "water"
    for key in ("water_iou", "water_f1", "miou"):
        assert m[key] is None or 0.0 <= m[key] <= 1.0
    assert m["pixels"] <= 2 * 256 * 256 and m["baseline_otsu"]["pixels"] == m["pixels"]
    assert 0.0 <= m["baseline_otsu"]["water_iou"] <= 1.0
    model = load_checkpoint(out / "model.safetensors")
    assert isinstance(model, SegmentationModel) and model.class_names == ["background", "water"]
    # predict runs it at the training crop (not the pretraining window), a quarter overlap
    assert model.inference == {"tile_size": 64, "tile_overlap": 16}
    info = ModelInfo.from_task_model(model)
    assert (info.tile_size, info.tile_overlap) == (64, 16)
    # the evaluate command reproduces the numbers from the saved model
    r = invoke(
        "evaluate",
        "--config",
        "finetune_water_etci.yaml",
        "--checkpoint",
        str(out / "model.safetensors"),
        "data.max_test=2",
        "--out",
        str(tmp_path / "e.json"),
    )
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["confusion_matrix"] == m["confusion_matrix"]
    assert "water IoU" in r.stdout
    from sarmae_train.report import table

    assert "| etci | segmentation | etci | scratch | water IoU / F1 % |" in table(
        [out / "metrics.json"]
    )


def test_a_final_model_trains_on_every_scene_and_says_it_is_not_scored(tmp_path):
    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.datasets import build_dataset
    from sarmae_train.report import table

    final = ["data.options.test_scenes=[]", "data.test_split=null"]
    cfg = load_config(FinetuneRunConfig, "finetune_water_etci.yaml", final)
    train = build_dataset(cfg.data, cfg.data.train_split, "db", True, 0, "segmentation")
    scenes = {t.parent.name if t.name == "tiles" else t.name for t, _ in train.items}
    assert scenes == {"nebraska_20170213t002121", "northal_20190302t234651"}
    out = tmp_path / "final"
    r = invoke(
        "finetune", "--config", "finetune_water_etci.yaml", "--out", str(out), *TINY, *final,
        "data.max_train=4", "data.crop=64", "optim.epochs=1", "optim.batch_size=2",
    )  # fmt: skip
    assert "not scored (data.test_split: null)" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] is None and m["train_samples"] == 4 and "water_iou" not in m
    assert isinstance(load_checkpoint(out / "model.safetensors"), SegmentationModel)
    assert "| not scored (trained on all data) |" in table([out / "metrics.json"])


def test_hrsid_ship_detection_reports_coco_ap(tmp_path, monkeypatch):
    out = tmp_path / "ships"
    invoke(
        "finetune",
        "--config",
        "finetune_ships_hrsid.yaml",
        "--out",
        str(out),
        *TINY,
        "data.max_train=2",
        "data.max_test=1",
        "data.crop=128",
        "model.tile=192",
        "model.tile_overlap=32",
        "optim.epochs=1",
        "optim.batch_size=2",
        "eval.batch_size=1",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "detection" and m["images"] == 1 and m["ground_truth_boxes"] > 0
    assert 0.0 <= m["AP"] <= m["AP50"] <= 1.0
    assert m["detections"] <= 100
    boxes = json.loads((out / "detections.json").read_text())  # boxes with scores
    assert len(boxes) == m["detections"] and {"image", "box", "score", "class"} <= set(boxes[0])
    model = load_checkpoint(out / "model.safetensors")
    assert isinstance(model, DetectionModel)
    # predict and export run it as configured, with the NMS IoU its AP was measured at
    info = load_backend(out / "model.safetensors").info
    assert (info.tile_size, info.tile_overlap, info.det_iou_threshold) == (192, 32, 0.5)
    from sarmae_core.contract.reader import read_model_info
    from sarmae_core.export.onnx import export_onnx

    export_onnx(model, tmp_path / "ships.onnx")  # as sarmae export without --tile
    exported = read_model_info(tmp_path / "ships.onnx")
    assert (exported.tile_size, exported.tile_overlap, exported.det_iou_threshold) == (192, 32, 0.5)
    explicit = ModelInfo.from_task_model(model, tile_size=256)  # sarmae export --tile 256
    assert (explicit.tile_size, explicit.tile_overlap, explicit.det_iou_threshold) == (256, 64, 0.5)
    model.inference = {}  # a checkpoint written before fine-tuning recorded them
    old = ModelInfo.from_task_model(model)
    assert old.tile_size == model.config.img_size
    assert old.det_iou_threshold == ModelInfo.det_iou_threshold
    # the held-out evaluation through predict takes other settings for a comparison
    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.heldout_ships import run

    cfg = load_config(FinetuneRunConfig, "finetune_ships_hrsid.yaml", ["data.max_test=1"])
    seen = []
    real = sarmae_core.predict

    def predict(*args, **kw):  # records the settings predict was given, then runs it
        res = real(*args, **kw)
        seen.append((kw.get("tile"), kw.get("overlap"), _iou(kw["model"])))
        return res

    def _iou(model):
        return load_backend(model).info.det_iou_threshold

    monkeypatch.setattr(sarmae_core, "predict", predict)
    tiling = {"tile": 256, "overlap": 32}
    result = run(cfg, {"m": str(out / "model.safetensors")}, 1.0, 0.01, tiling, 0.3)
    assert seen and set(seen) == {(256, 32, 0.3)} and result["tiles"] == len(seen)


def test_checkpoint_of_another_preset_is_refused(tmp_path):
    other = save_checkpoint(
        create_model("sarmae_vit_tiny", in_chans=1), tmp_path / "tiny.safetensors"
    )
    r = invoke(
        "finetune",
        "--config",
        "finetune_mstar.yaml",
        "--init",
        str(other),
        "--out",
        str(tmp_path / "x"),
        *TINY,
        ok=False,
    )
    assert r.exit_code == 2
    assert "holds a sarmae_vit_tiny model (embed_dim 192 (run: 32)" in r.stderr
    assert "model.preset=sarmae_vit_tiny" in r.stderr
    # the authors' .pth of a ViT-Tiny layout, into the test preset: refused, naming the difference
    enc = create_model("sarmae_vit_tiny").encoder.state_dict()
    pth = tmp_path / "checkpoint-last.pth"
    torch.save(
        {
            "model": {f"sar_encoder.{k}": v for k, v in enc.items()},
            "args": argparse.Namespace(lr=1e-4),
        },
        pth,
    )
    r = invoke(
        "finetune",
        "--config",
        "finetune_mstar.yaml",
        "--init",
        str(pth),
        "--out",
        str(tmp_path / "y"),
        *TINY,
        ok=False,
    )
    assert r.exit_code == 2 and "embedding width 192 vs ours 32" in r.stderr


def test_authors_pth_of_the_same_architecture_initialises_the_encoder(tmp_path, caplog):
    torch.manual_seed(5)
    enc = create_model("sarmae_test").encoder.state_dict()
    pth = tmp_path / "checkpoint-last.pth"
    torch.save(
        {
            "model": {
                **{f"sar_encoder.{k}": v for k, v in enc.items()},
                "decoder_embed.weight": torch.zeros(2, 2),
            }
        },
        pth,
    )
    with caplog.at_level("INFO", logger="sarmae_train.task_models"):
        invoke(
            "finetune",
            "--config",
            "finetune_mstar.yaml",
            "--init",
            str(pth),
            "--out",
            str(tmp_path / "a"),
            *TINY,
            "data.shots_per_class=1",
            "data.max_test=2",
            "optim.epochs=1",
            "optim.batch_size=10",
            "optim.lr=0.0",
        )
    assert "authors' checkpoint" in caplog.text and "unused groups: decoder_embed" in caplog.text
    model = load_checkpoint(tmp_path / "a" / "model.safetensors")
    assert torch.equal(model.encoder.blocks[0].attn.qkv.weight, enc["blocks.0.attn.qkv.weight"])


def test_bad_fine_tuning_input(tmp_path):
    r = invoke("finetune", "--config", "finetune_mstar.yaml", "data.path=nowhere", *TINY, ok=False)
    assert r.exit_code == 2 and "nowhere does not exist" in r.stderr
    r = invoke("finetune", "--config", "finetune_mstar.yaml", "optim.epoch=3", *TINY, ok=False)
    assert r.exit_code == 2 and "did you mean 'epochs'" in r.stderr
    r = invoke("finetune", "--config", "finetune_mstar.yaml", "some/path", ok=False)
    assert r.exit_code == 2 and "expected key=value overrides" in r.stderr
    r = invoke(
        "finetune",
        "--config",
        "finetune_mstar.yaml",
        "--init",
        str(tmp_path / "no.pth"),
        *TINY,
        ok=False,
    )
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = invoke("finetune", "--config", "finetune_ships_hrsid.yaml", "model.tile=200", *TINY,
               ok=False)  # fmt: skip
    assert r.exit_code == 2 and "model.tile 200 px" in r.stderr and "multiple" in r.stderr


def test_finetune_resumes_at_an_epoch_boundary_to_the_same_weights(tmp_path):
    args = [*TINY, "data.shots_per_class=1", "data.max_test=2", "optim.epochs=2",
            "optim.batch_size=5", "model.drop_path_rate=0.1"]  # fmt: skip
    full = tmp_path / "full"
    invoke("finetune", "--config", "finetune_mstar.yaml", "--out", str(full), *args)
    states = sorted((full / "checkpoints").glob("state-step*.safetensors"))
    assert [p.name for p in states] == ["state-step00000002.safetensors",
                                        "state-step00000004.safetensors"]  # fmt: skip
    # as if killed after epoch 0: only its checkpoint is left
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    (cut / "checkpoints" / states[0].name).write_bytes(states[0].read_bytes())
    invoke("finetune", "--config", "finetune_mstar.yaml", "--out", str(cut), "--resume", *args)
    a = load_checkpoint(full / "model.safetensors").state_dict()
    b = load_checkpoint(cut / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_model_overrides_apply_on_top_of_an_init_checkpoint(tmp_path):
    """A run's data settings are not silently dropped when it starts from a checkpoint."""
    from sarmae_core.models import create_model, save_checkpoint
    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.task_models import encoder_config

    ckpt = save_checkpoint(create_model("sarmae_test"), tmp_path / "pre.safetensors")
    cfg = load_config(
        FinetuneRunConfig,
        "finetune_water_etci.yaml",
        [f"model.init={ckpt}", "model.preset=sarmae_test",
         "model.overrides.data.normalization.mode=per_tile"],
    )  # fmt: skip
    config = encoder_config(cfg, 1)
    assert config.data.normalization.mode == "per_tile"
    assert config.embed_dim == 32  # architecture is the checkpoint's
    bad = load_config(
        FinetuneRunConfig,
        "finetune_water_etci.yaml",
        [f"model.init={ckpt}", "model.preset=sarmae_test", "model.overrides.depth=3"],
    )
    with pytest.raises(ConfigError, match="change the architecture"):
        encoder_config(bad, 1)


def test_vv_encoder_starts_a_vv_vh_water_model(tmp_path, sarmae_ckpt):
    """The bundled VV+VH recipe: a VV checkpoint, ETCI VV and VH with per-band affines."""
    from safetensors.torch import load_file

    out = tmp_path / "vvvh"
    invoke(
        "finetune", "--config", "finetune_water_vvvh_bundled.yaml", "--out", str(out), *TINY,
        "--init", str(sarmae_ckpt), "data.max_train=4", "data.max_test=2", "data.crop=64",
        "optim.epochs=1", "optim.batch_size=2",
    )  # fmt: skip
    model = load_checkpoint(out / "model.safetensors")
    assert model.config.data.polarisations == ["VV", "VH"]
    assert model.config.data.normalization.mean == [-12.0, -19.0]
    # Before training, both channels of the widened kernel are the VV kernel halved; one epoch
    # of fine-tuning moves them only a little, and never to zero.
    vv = load_file(sarmae_ckpt)["encoder.patch_embed.proj.weight"]
    w = model.encoder.patch_embed.proj.weight.detach()
    assert w.shape[1] == 2
    for c in range(2):
        assert torch.nn.functional.cosine_similarity(w[:, c].flatten(), vv[:, 0].flatten(), 0) > 0.9
    # Without the VH declaration the VV checkpoint is refused with what to do
    r = invoke(
        "finetune", "--config", "finetune_water_etci.yaml", "--out", str(tmp_path / "x"), *TINY,
        "--init", str(sarmae_ckpt), "data.bands=[vv,vh]", ok=False,
    )  # fmt: skip
    assert "model.overrides.data" in r.stderr


def test_units_take_one_affine_per_band():
    import numpy as np

    from sarmae_train.config import UnitsConfig

    dn = np.full((2, 2, 2), 100, np.uint8)
    u = UnitsConfig(units="db", scale=[0.5, 0.25], offset=[-30.0, -20.0])
    phys = u.to_physical(dn)
    assert phys[0].flat[0] == pytest.approx(20.0) and phys[1].flat[0] == pytest.approx(5.0)
    assert UnitsConfig(scale=2.0).to_physical(dn)[1, 0, 0] == 200.0
    with pytest.raises(ConfigError, match="one per band"):
        UnitsConfig(scale=[1.0, 2.0, 3.0]).to_physical(dn)


def test_sigterm_ends_finetune_like_ctrl_c(tmp_path):
    """Issue 12 item 11: SIGTERM (a scheduler's stop, ``timeout``) mid-training exits 143 with
    one line, no traceback, and leaves only whole checkpoints (no temporary files)."""
    import os
    import signal
    import time

    from .conftest import run_cli

    out = tmp_path / "ft"
    proc = run_cli("finetune", "--config", "finetune_mstar.yaml", "--out", str(out), *TINY,
                   "data.shots_per_class=1", "data.max_test=2", "optim.epochs=500",
                   "optim.batch_size=5")  # fmt: skip
    t0 = time.monotonic()
    # once an epoch checkpoint exists, training is under way (handlers installed, data loaded)
    while not list((out / "checkpoints").glob("state-step*.safetensors")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - t0 < 120, "no checkpoint after 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    left = [p.name for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert left == []


def test_flood_model_starts_as_the_water_model_on_the_after_date(tmp_path, sarmae_ckpt, caplog):
    """``model.init_head`` with ``init_channels: [null, 0]``: before training, the two-date
    model given (anything, x) answers exactly what the water model answers on x."""
    from pathlib import Path

    from sarmae_core.models import make_config
    from sarmae_train.task_models import whole_model_state

    torch.manual_seed(0)
    water = SegmentationModel(make_config("sarmae_test", in_chans=1), 2, detail=4,
                              context_pool=2).eval()  # fmt: skip
    for m in water.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    pair = {
        "units": "db",
        "polarisations": ["VV", "VV"],
        "dates": ["before", "after"],
        "normalization": {"mode": "fixed", "mean": [-12.0, -12.0], "std": [5.0, 5.0]},
    }
    flood = SegmentationModel(make_config("sarmae_test", data=pair), 2, detail=4,
                              context_pool=2).eval()  # fmt: skip
    state = whole_model_state(flood, water.state_dict(), Path("water.safetensors"), [None, 0])
    flood.load_state_dict(state)
    x = torch.randn(2, 1, 64, 64) * 5 - 12
    before = torch.randn(2, 1, 64, 64) * 5 - 12
    with torch.no_grad():
        torch.testing.assert_close(flood(torch.cat([before, x], 1)), water(x))
    with pytest.raises(ConfigError, match="init_channels has 3 entries for 2 input"):
        whole_model_state(flood, water.state_dict(), Path("w"), [None, 0, 0])
    with pytest.raises(ConfigError, match=r"init_channels\[1\] = 4"):
        whole_model_state(flood, water.state_dict(), Path("w"), [None, 4])
    # the recipe's config from a fine-tuned water model; an encoder-only checkpoint is refused
    ckpt = save_checkpoint(water, tmp_path / "water.safetensors",
                           extra={"task": "segmentation"})  # fmt: skip
    args = ["finetune", "--config", "finetune_flood_bundled.yaml", *TINY, "data.max_train=2",
            "data.max_test=2", "data.crop=64", "optim.epochs=1", "optim.batch_size=2"]  # fmt: skip
    with caplog.at_level("INFO", logger="sarmae_train.task_models"):
        invoke(*args, "--init", str(ckpt), "--out", str(tmp_path / "flood"))
    assert "whole model (encoder and head) initialised" in caplog.text
    assert "standardised with" not in caplog.text  # VV -12/5 dB in both
    r = invoke(*args, "--init", str(sarmae_ckpt), "--out", str(tmp_path / "x"), ok=False)
    assert "model.init_head needs a fine-tuned model" in r.stderr


def test_model_detail_reaches_the_heads_that_take_it():
    from sarmae_train.config import FinetuneRunConfig, load_config
    from sarmae_train.task_models import task_kwargs

    ships = "training/configs/finetune_ships_bundled.yaml"
    cfg = load_config(FinetuneRunConfig, ships, ["model.detail=4"])
    assert task_kwargs(cfg) == {"centre_region": True, "detail": 4}
    assert "detail" not in task_kwargs(load_config(FinetuneRunConfig, ships, []))
    with pytest.raises(ConfigError, match="context_pool is a segmentation option"):
        task_kwargs(
            load_config(FinetuneRunConfig, ships, ["model.detail=4", "model.context_pool=2"])
        )
    mstar = load_config(
        FinetuneRunConfig, "training/configs/finetune_mstar.yaml", ["model.detail=4"]
    )
    with pytest.raises(ConfigError, match="segmentation and detection option"):
        task_kwargs(mstar)

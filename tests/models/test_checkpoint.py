"""Checkpoints: safetensors round trip, and the authors' released key layout."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors import safe_open

from sarmae_core.errors import CheckpointError
from sarmae_core.models import (
    create_model,
    load_authors_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sarmae_core.models.registry import PRESETS


def test_round_trip_gives_identical_outputs(tmp_path):
    model = create_model("sarmae_test", in_chans=2, mask_ratio=0.6).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"step": 12})
    again = load_checkpoint(path).eval()
    assert again.config == model.config
    x = -12 + 5 * torch.randn(3, 2, 64, 64)
    a = model(x, generator=torch.Generator().manual_seed(5))
    b = again(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.pred, b.pred)
    assert torch.equal(model.encoder.forward_features(x), again.encoder.forward_features(x))
    # the config is plain JSON in the file header: nothing pickled
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    cfg = json.loads(header["sarmae_config"])
    assert cfg["preset"] == "sarmae_test"
    assert cfg["data"]["polarisations"] == ["VV", "VH"]
    assert cfg["data"]["units"] == "db"
    assert json.loads(header["step"]) == 12


def test_save_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path):
    model = create_model("sarmae_test")
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        save_checkpoint(create_model("sarmae_test"), path)
    assert path.read_bytes() == before
    save_checkpoint(create_model("sarmae_test"), path, overwrite=True)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_corrupt_and_missing_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated, or not a safetensors file"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def _authors_state(dim: int, depth: int, heads: int, dec_dim: int = 16) -> dict:
    """A state dict in the released SARMAE layout: MAE under `sar_encoder.`, RGB patch embedding,
    224 px (14x14) position embedding, decoder, alignment FFN and optical branch."""
    torch.manual_seed(0)
    s: dict[str, torch.Tensor] = {}
    enc = "sar_encoder."
    s[enc + "cls_token"] = torch.randn(1, 1, dim)
    s[enc + "pos_embed"] = torch.randn(1, 197, dim)
    s[enc + "patch_embed.proj.weight"] = torch.randn(dim, 3, 16, 16)
    s[enc + "patch_embed.proj.bias"] = torch.randn(dim)
    for i in range(depth):
        b = f"{enc}blocks.{i}."
        s[b + "norm1.weight"], s[b + "norm1.bias"] = torch.randn(dim), torch.randn(dim)
        s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"] = (
            torch.randn(3 * dim, dim),
            torch.randn(3 * dim),
        )
        s[b + "attn.proj.weight"], s[b + "attn.proj.bias"] = torch.randn(dim, dim), torch.randn(dim)
        s[b + "norm2.weight"], s[b + "norm2.bias"] = torch.randn(dim), torch.randn(dim)
        s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"] = (
            torch.randn(4 * dim, dim),
            torch.randn(4 * dim),
        )
        s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"] = torch.randn(dim, 4 * dim), torch.randn(dim)
    s[enc + "norm.weight"], s[enc + "norm.bias"] = torch.randn(dim), torch.randn(dim)
    s[enc + "mask_token"] = torch.randn(1, 1, dec_dim)
    s[enc + "decoder_embed.weight"] = torch.randn(dec_dim, dim)
    s[enc + "decoder_pos_embed"] = torch.randn(1, 197, dec_dim)
    s[enc + "decoder_blocks.0.norm1.weight"] = torch.randn(dec_dim)
    s[enc + "decoder_pred.weight"] = torch.randn(16 * 16 * 3, dec_dim)
    s["sar_alignment_ffn.0.weight"] = torch.randn(dim, dim)
    s["optical_encoder.patch_embed.weight"] = torch.randn(768, 3, 16, 16)
    return s


def test_authors_checkpoint_loads_into_any_in_chans_and_size(tmp_path):
    dim = PRESETS["sarmae_test"]["embed_dim"]
    state = _authors_state(dim, depth=2, heads=2)
    path = tmp_path / "checkpoint-last.pth"
    # as their training script saves it: weights under 'model', plus args/epoch
    torch.save({"model": state, "args": argparse.Namespace(lr=1e-4), "epoch": 299}, path)

    model = create_model("sarmae_test", in_chans=2, img_size=96)  # 6x6 grid, 2 channels
    report = load_authors_checkpoint(path, model)
    enc = model.encoder
    assert len(report.loaded) == 4 + 2 * 12 + 2  # cls, pos, patch w/b, 2 blocks, final norm
    assert report.missing == []
    assert "sar_encoder.decoder_embed.weight" in report.unexpected
    assert "optical_encoder.patch_embed.weight" in report.unexpected
    assert "sar_alignment_ffn.0.weight" in report.unexpected
    assert "input channels 3 -> 2" in report.adapted["patch_embed.proj.weight"]
    assert "14x14 -> 6x6" in report.adapted["pos_embed"]
    assert torch.equal(enc.blocks[1].mlp.fc2.weight, state["sar_encoder.blocks.1.mlp.fc2.weight"])
    assert enc.pos_embed.shape == (1, 37, dim)
    assert "loaded 30 tensors" in report.summary()

    # one channel: the kernel summed over RGB, so grey input gives the response of grey-as-RGB
    grey_model = create_model("sarmae_test", in_chans=1, img_size=224)
    load_authors_checkpoint(path, grey_model)
    grey = torch.randn(1, 1, 224, 224)
    ours = grey_model.encoder.patch_embed.proj(grey)
    theirs = torch.nn.functional.conv2d(
        grey.repeat(1, 3, 1, 1),
        state["sar_encoder.patch_embed.proj.weight"],
        state["sar_encoder.patch_embed.proj.bias"],
        stride=16,
    )
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert torch.equal(grey_model.encoder.pos_embed, state["sar_encoder.pos_embed"])


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "vit_other.pth"
    torch.save({"model": _authors_state(48, depth=3, heads=2)}, path)
    with pytest.raises(CheckpointError) as err:
        load_authors_checkpoint(path, create_model("sarmae_test"))
    msg = str(err.value)
    assert "embedding width 48 vs ours 32" in msg
    assert "depth 3 blocks vs ours 2" in msg


class _Payload:
    """Stands for any object that needs code to rebuild (a pickled callable, a custom class)."""


def test_checkpoint_that_needs_code_to_unpickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "obj": _Payload()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_authors_checkpoint(path, create_model("sarmae_test"))


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("segmentation", {"num_classes": 2, "class_names": ["background", "water"]}),
        ("detection", {"num_classes": 1}),
        ("classification", {"num_classes": 3, "pool": "cls", "linear_probe": True}),
    ],
)
def test_task_models_round_trip(tmp_path, task, kwargs):
    from sarmae_core.models.heads import build_task_model
    from sarmae_core.models.registry import make_config

    model = build_task_model(task, make_config("sarmae_test"), **kwargs).eval()
    path = save_checkpoint(model, tmp_path / f"{task}.safetensors")
    again = load_checkpoint(path).eval()
    assert type(again) is type(model)
    assert again.class_names == model.class_names
    x = -12 + 5 * torch.randn(2, 1, 64, 64)
    for a, b in zip(model.export_outputs(x), again.export_outputs(x), strict=True):
        assert torch.equal(a, b)


def test_encoder_only_checkpoint_keeps_the_encoder_and_starts_a_task_model(tmp_path):
    from sarmae_core.models.checkpoint import encoder_only, read_checkpoint
    from sarmae_core.models.heads import SegmentationModel

    model = create_model("sarmae_test", in_chans=1).eval()
    full = save_checkpoint(model, tmp_path / "full.safetensors", extra={"step": 3})
    enc = encoder_only(full, tmp_path / "enc.safetensors")
    assert enc.stat().st_size < full.stat().st_size
    config, tensors, extras = read_checkpoint(enc)
    assert config == model.config and extras["step"] == 3 and extras["encoder_only"] is True
    assert tensors and all(k.startswith("encoder.") for k in tensors)
    again = load_checkpoint(enc).eval()  # a SARMAE model, its decoder new
    x = -12 + 5 * torch.randn(2, 1, 64, 64)
    assert torch.equal(model.encoder.forward_features(x), again.encoder.forward_features(x))
    seg = SegmentationModel(config, 2)
    seg.encoder.load_state_dict({k[len("encoder.") :]: v for k, v in tensors.items()})
    with pytest.raises(FileExistsError):
        encoder_only(full, enc)
    task = save_checkpoint(seg, tmp_path / "seg.safetensors")
    with pytest.raises(CheckpointError, match="not a SARMAE pretraining model"):
        encoder_only(task, tmp_path / "x.safetensors")


def test_a_float16_encoder_is_half_the_file_and_starts_a_task_model_in_float32(tmp_path):
    from sarmae_core.models.checkpoint import encoder_only, read_checkpoint
    from sarmae_core.models.heads import SegmentationModel

    model = create_model("sarmae_test", in_chans=1).eval()
    full = save_checkpoint(model, tmp_path / "full.safetensors")
    enc32 = encoder_only(full, tmp_path / "enc32.safetensors")
    enc16 = encoder_only(full, tmp_path / "enc16.safetensors", dtype="float16")
    assert enc16.stat().st_size < 0.55 * enc32.stat().st_size
    config, tensors, _ = read_checkpoint(enc16)
    assert {v.dtype for v in tensors.values()} == {torch.float16}
    seg = SegmentationModel(config, 2)
    seg.encoder.load_state_dict({k[len("encoder.") :]: v for k, v in tensors.items()})
    assert all(p.dtype == torch.float32 for p in seg.parameters())
    for name, value in model.encoder.state_dict().items():  # rounded, not changed
        assert torch.allclose(seg.encoder.state_dict()[name], value, rtol=1e-3, atol=1e-4), name


def test_the_committed_bundled_encoder_loads_and_matches_its_readme():
    import hashlib
    from pathlib import Path

    folder = Path(__file__).parents[2] / "training" / "encoders" / "bundled"
    path = folder / "encoder.safetensors"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in (folder / "README.md").read_text()
    model = load_checkpoint(path).eval()
    assert model.config.preset == "sarmae_vit_tiny" and model.config.data.polarisations == ["VV"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == json.loads((folder / "config.json").read_text())["optim"]["steps"]

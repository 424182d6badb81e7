"""Schedule, parameter groups with layer-wise lr decay, and the pickle-free optimiser state."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from sarmae_core.models import create_model, make_config
from sarmae_core.models.heads import ClassificationModel, SegmentationModel
from sarmae_train.optim import (
    layer_decay_groups,
    lr_at,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    param_groups,
    set_lr,
)


def test_warmup_then_cosine():
    lrs = [lr_at(s, total=100, warmup=10, peak=1.0, min_lr=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup
    assert all(a < b for a, b in pairwise(lrs[:10]))
    assert all(a >= b for a, b in pairwise(lrs[10:]))  # cosine decay
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert lr_at(0, 100, 0, 1.0) == pytest.approx(1.0)  # no warmup


def test_layer_decay_scales_blocks_and_keeps_heads_at_full_rate():
    cfg = make_config("sarmae_test")  # depth 2
    model = ClassificationModel(cfg, 3)
    groups = layer_decay_groups(model, weight_decay=0.05, layer_decay=0.5, depth=2)
    scale = {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale[id(named["encoder.patch_embed.proj.weight"])] == (0.5**3, 0.05)
    assert scale[id(named["encoder.cls_token"])] == (0.5**3, 0.0)  # tokens: no decay
    assert scale[id(named["encoder.blocks.0.attn.qkv.weight"])] == (0.5**2, 0.05)
    assert scale[id(named["encoder.blocks.1.attn.qkv.weight"])] == (0.5, 0.05)
    assert scale[id(named["encoder.blocks.1.norm1.bias"])] == (0.5, 0.0)
    assert scale[id(named["head.weight"])] == (1.0, 0.05)
    # every trainable parameter is in exactly one group (the frozen pos_embed in none)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(map(id, trainable)) == sorted(scale)
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr(opt, 2e-3)
    assert {g["lr"] for g in opt.param_groups} == {2e-3 * 0.5**k for k in range(4)}


def test_linear_probe_trains_the_head_only():
    model = ClassificationModel(make_config("sarmae_test"), 3, linear_probe=True)
    groups = layer_decay_groups(model, 0.05, 0.75, depth=2)
    names = {n for n, p in model.named_parameters() for g in groups for q in g["params"] if p is q}
    assert names == {"head_norm.weight", "head_norm.bias", "head.weight", "head.bias"}


def test_dense_decoder_is_not_decayed_by_layer():
    model = SegmentationModel(make_config("sarmae_test"), 2)
    groups = layer_decay_groups(model, 0.05, 0.75, depth=2)
    for g in groups:
        for p in g["params"]:
            name = next(n for n, q in model.named_parameters() if q is p)
            if not name.startswith("encoder."):
                assert g["lr_scale"] == 1.0, name


def _train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = -12 + 5 * torch.randn(2, 1, 32, 32, generator=g)
        out = model(x, generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def test_optimizer_state_round_trips_without_pickles_bit_exactly():
    torch.manual_seed(0)
    a = create_model("sarmae_test", img_size=32)
    opt_a = torch.optim.AdamW(param_groups(a, 0.05), lr=1e-3, betas=(0.9, 0.95))
    _train(a, opt_a, 3, seed=1)
    tensors, meta = optimizer_state_to_tensors(opt_a)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    assert all(k.startswith("optim.state.") for k in tensors)

    b = create_model("sarmae_test", img_size=32)
    b.load_state_dict(a.state_dict())
    opt_b = torch.optim.AdamW(param_groups(b, 0.05), lr=5.0, betas=(0.1, 0.1))  # overwritten
    optimizer_state_from_tensors(opt_b, tensors, meta)
    assert opt_b.param_groups[0]["betas"] == (0.9, 0.95)
    _train(a, opt_a, 2, seed=2)
    _train(b, opt_b, 2, seed=2)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k

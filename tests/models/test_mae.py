"""The SARMAE pretraining model: shapes, masking, loss semantics, presets, bad input."""

from __future__ import annotations

import pytest
import torch

from sarmae_core.errors import ConfigError, InputError
from sarmae_core.models import create_model, list_presets, make_config
from sarmae_core.models.mae import SARMAE
from sarmae_core.speckle import SpeckleConfig


def _db_batch(n=2, c=1, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return -12.0 + 5.0 * torch.randn(n, c, size, size, generator=g)


PAPER_SIZES = {
    "sarmae_vit_tiny": (192, 12, 3),
    "sarmae_vit_small": (384, 12, 6),
    "sarmae_vit_base": (768, 12, 12),
    "sarmae_vit_large": (1024, 24, 16),
}


def test_presets_are_registered():
    assert set(PAPER_SIZES) | {"sarmae_test"} <= set(list_presets())


@pytest.mark.parametrize("preset", sorted(PAPER_SIZES))
def test_large_presets_build_with_paper_sizes_on_meta_device(preset):
    with torch.device("meta"):
        model = create_model(preset, in_chans=2)
        x = torch.empty(2, 2, 224, 224)
        feats = model.encoder.forward_features(x)
    d, depth, heads = PAPER_SIZES[preset]
    assert feats.shape == (2, 1 + 196, d)
    assert len(model.encoder.blocks) == depth
    assert model.encoder.blocks[0].attn.num_heads == heads
    if preset in ("sarmae_vit_base", "sarmae_vit_large"):
        # paper decoder: 8 blocks, 512 wide, 16 heads
        assert len(model.decoder_blocks) == 8
        assert model.decoder_embed.out_features == 512
        assert model.decoder_blocks[0].attn.num_heads == 16


@pytest.mark.parametrize("in_chans", [1, 2, 3])
def test_small_model_forward_shapes_and_fused_attention(in_chans):
    model = create_model("sarmae_test", in_chans=in_chans)
    x = _db_batch(c=in_chans)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.pred.shape == (2, 16, 16 * 16 * in_chans)
    assert out.mask.shape == (2, 16)
    assert torch.isfinite(out.loss)
    assert all(blk.attn.fused_attn for blk in model.encoder.blocks)  # timm's fused SDPA
    # any multiple of the patch works, not just the preset's size
    feats = model.encoder.forward_features(_db_batch(1, in_chans, 48)[..., :32])
    assert feats.shape == (1, 1 + 3 * 2, 32)
    inter = model.encoder.block_maps(_db_batch(1, in_chans, 96), [0, -1])
    assert [f.shape for f in inter] == [(1, 32, 6, 6)] * 2


def test_vit_tiny_runs_at_224_and_other_sizes():
    model = create_model("sarmae_vit_tiny").eval()
    out = model(_db_batch(1, 1, 224))
    assert out.pred.shape == (1, 196, 256)
    assert model.encoder.forward_features(_db_batch(1, 1, 160)[..., :96]).shape == (1, 61, 192)


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_mask_ratio_is_honoured_exactly(ratio):
    model = create_model("sarmae_test", img_size=128)  # 64 patches
    out = model(_db_batch(4, size=128), mask_ratio=ratio)
    assert (out.mask.sum(1) == round(64 * ratio)).all()
    assert set(out.mask.unique().tolist()) == {0.0, 1.0}
    # masks differ between samples (random per sample)
    assert not torch.equal(out.mask[0], out.mask[1])


def test_loss_depends_only_on_masked_target_pixels():
    model = create_model("sarmae_test", speckle=SpeckleConfig(enabled=False)).eval()
    x = _db_batch()
    seed = 123
    base = model(x, generator=torch.Generator().manual_seed(seed))
    p = model.config.patch_size
    visible = (base.mask[0] == 0).nonzero()[0].item()
    masked = (base.mask[0] == 1).nonzero()[0].item()

    def perturb(idx):
        y = x.clone()
        gw = x.shape[-1] // p
        r, c = divmod(idx, gw)
        y[0, :, r * p : (r + 1) * p, c * p : (c + 1) * p] += 7.0
        return y

    # Changing a visible patch changes the encoder input too, so compare with the target alone:
    # forward_loss with the same prediction and mask isolates the target's effect.
    tgt = model.normalize(x)
    loss = model.forward_loss(tgt, base.pred, base.mask)
    assert torch.allclose(loss, base.loss_rec)
    loss_vis = model.forward_loss(model.normalize(perturb(visible)), base.pred, base.mask)
    loss_msk = model.forward_loss(model.normalize(perturb(masked)), base.pred, base.mask)
    assert torch.equal(loss_vis, loss)
    assert not torch.allclose(loss_msk, loss)


def test_sare_noises_encoder_input_but_target_stays_clean():
    cfg = SpeckleConfig(p=1.0, min_looks=1.0, max_looks=1.0)
    model = create_model("sarmae_test", speckle=cfg).train()
    x = _db_batch()
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.looks).all()
    assert not torch.allclose(out.encoder_input, model.normalize(x))
    # dB speckle is additive: its std in dB is 10/ln(10) * sqrt(trigamma(1)) ~ 5.57 dB
    diff = (out.encoder_input - model.normalize(x)) * model.input_norm.std
    assert abs(diff.std().item() - 5.57) < 0.2
    # the reconstruction target is the clean image: same loss as computing it by hand
    assert torch.allclose(out.loss_rec, model.forward_loss(model.normalize(x), out.pred, out.mask))
    model.eval()
    assert torch.equal(model(x).encoder_input, model.normalize(x))  # no speckle at eval


def test_norm_pix_loss_option():
    x = _db_batch()
    a = create_model("sarmae_test", norm_pix_loss=True).eval()
    b = create_model("sarmae_test", norm_pix_loss=False).eval()
    b.load_state_dict(a.state_dict())
    la = a(x, generator=torch.Generator().manual_seed(1)).loss
    lb = b(x, generator=torch.Generator().manual_seed(1)).loss
    assert not torch.allclose(la, lb)


def test_one_training_step_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = create_model("sarmae_test", speckle=SpeckleConfig(enabled=False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = _db_batch(4)
    losses = []
    for _ in range(30):
        out = model(x, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_bad_input_gives_clear_errors():
    model = create_model("sarmae_test")
    with pytest.raises(InputError, match="takes 1 SAR channel"):
        model(_db_batch(c=2))
    with pytest.raises(InputError, match="not a multiple of the 16px patch"):
        model(_db_batch(size=60))
    x = _db_batch()
    x[0, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model(x)
    with pytest.raises(InputError, match=r"\[N, C, H, W\]"):
        model(x[0])
    with pytest.raises(ConfigError, match="unknown preset 'sarmae_vit_bse'; did you mean"):
        create_model("sarmae_vit_bse")
    with pytest.raises(ConfigError, match="did you mean 'mask_ratio'"):
        make_config("sarmae_test", mask_rato=0.5)
    with pytest.raises(ConfigError, match="in_chans"):
        create_model("sarmae_test", in_chans=4)


def test_model_is_built_from_config_alone():
    cfg = make_config("sarmae_test", in_chans=2)
    again = type(cfg).from_dict(cfg.to_dict())
    assert again == cfg
    assert isinstance(SARMAE(again), SARMAE)


def test_per_tile_normalisation_is_blind_to_affine_changes_of_db():
    """8-bit chips that are stretched dB and calibrated dB scenes give the model the same input."""
    from sarmae_core.config import Normalization

    model = create_model("sarmae_test", data={"normalization": Normalization(mode="per_tile")})
    x = _db_batch()
    stretched = (x - x.amin()) / (x.amax() - x.amin()) * 255  # OMBRIA-style 8-bit stretch
    assert torch.allclose(model.normalize(x), model.normalize(stretched), atol=1e-4)
    z = model.normalize(x)
    assert torch.allclose(z.mean((-2, -1)), torch.zeros(2, 1), atol=1e-5)
    assert torch.isfinite(model.normalize(torch.full((1, 1, 64, 64), -20.0))).all()
    with pytest.raises(ConfigError, match="unknown normalisation mode"):
        Normalization(mode="minmax")

"""Task models and their losses: shapes, normalisation inside, output contract, training signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sarmae_core.errors import ConfigError, InputError
from sarmae_core.models.heads import (
    ClassificationModel,
    DetectionModel,
    PyramidFusion,
    SegmentationModel,
    build_task_model,
    default_indices,
)
from sarmae_core.models.losses import build_detection_targets, detection_loss, segmentation_loss
from sarmae_core.models.registry import make_config

S1_VV_DB = (
    Path(__file__).parents[1]
    / "fixtures"
    / "s1_vv_db"
    / "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"
)


def _real_db_tiles(n: int, size: int) -> torch.Tensor:
    """n real Sentinel-1 VV dB tiles [n, 1, size, size] from the committed fixture."""
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(S1_VV_DB) as src:
        band = src.read(1)  # [217, 268], dB
    tiles = [band[i * 40 : i * 40 + size, i * 60 : i * 60 + size] for i in range(n)]
    return torch.from_numpy(np.stack(tiles)[:, None].copy())


def _decode(heatmap, size, offset, stride, conf=0.5):
    """The documented, torch-free decoding of DetectionModel outputs (one image, numpy)."""
    padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    peaks = (heatmap == windows.max(axis=(-1, -2))) & (heatmap > conf)
    boxes = []
    for c, i, j in zip(*np.nonzero(peaks), strict=True):
        cx, cy = (j + offset[0, i, j]) * stride, (i + offset[1, i, j]) * stride
        bw, bh = size[:, i, j]
        boxes.append((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, c))
    return sorted(boxes)


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize(("preset", "px"), [("sarmae_test", 64), ("sarmae_vit_tiny", 224)])
def test_output_shapes_of_every_head(preset, px):
    torch.manual_seed(0)
    cfg = make_config(preset)
    x = -12.0 + 5.0 * torch.randn(2, 1, px, px)
    seg, det, cls = (
        build_task_model("segmentation", cfg, 3).eval(),
        build_task_model("detection", cfg, 2).eval(),
        build_task_model("classification", cfg, 5).eval(),
    )
    with torch.no_grad():
        assert seg(x).shape == (2, 3, px, px)
        proba = seg.predict_proba(x)
        out = det(x)
        logits = cls(x)
    torch.testing.assert_close(proba.sum(1), torch.ones(2, px, px))
    s = px // 4
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "heatmap": (2, 2, s, s),
        "size": (2, 2, s, s),
        "offset": (2, 2, s, s),
    }
    assert ((out["heatmap"] > 0) & (out["heatmap"] < 1)).all()
    assert (out["size"] > 0).all()
    assert ((out["offset"] >= 0) & (out["offset"] < 1)).all()
    assert logits.shape == (2, 5)
    for model, task in ((seg, "segmentation"), (det, "detection"), (cls, "classification")):
        assert model.task == task and model.config is cfg
    assert seg.class_names == ["background", "class_1", "class_2"]
    assert det.stride == 4 and seg.indices == default_indices(cfg.depth)


def test_pyramid_fusion_is_the_concat_then_conv_it_replaces():
    torch.manual_seed(0)
    fusion = PyramidFusion(8).eval()
    torch.nn.init.normal_(fusion.fuse[1].weight)  # non-trivial norm after the fused conv
    feats = [torch.randn(2, 8, 40 // 2**i, 36 // 2**i) for i in range(4)]
    with torch.no_grad():
        got = fusion(feats)
        # The UPerNet form: every level resized to the finest stride, concatenated, 1x1 conv.
        f = list(feats)
        for i in range(2, -1, -1):
            f[i] = f[i] + F.interpolate(f[i + 1], size=f[i].shape[-2:], mode="bilinear")
        outs = [s(x) for s, x in zip(fusion.smooth, f, strict=True)]
        size = outs[0].shape[-2:]
        up = [outs[0], *(F.interpolate(o, size=size, mode="bilinear") for o in outs[1:])]
        want = fusion.fuse(torch.cat(up, dim=1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_default_indices_follow_the_paper_and_scale_with_depth():
    assert default_indices(12) == [3, 5, 7, 11]  # the authors' UPerNet blocks for ViT-B
    assert default_indices(24) == [7, 11, 15, 23]
    assert default_indices(2) == [0, 0, 0, 1]


def test_models_take_physical_units_and_normalise_inside():
    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    model = ClassificationModel(cfg, 3, pool="cls").eval()
    x = -12.0 + 5.0 * torch.randn(2, 1, 64, 64)
    norm = cfg.data.normalization
    with torch.no_grad():
        tokens = model.encoder.forward_features((x - norm.mean[0]) / norm.std[0])
        expected = model.head(model.head_norm(tokens[:, 0]))
        torch.testing.assert_close(model(x), expected)


def test_wrong_band_count_and_bad_arguments_raise():
    cfg = make_config("sarmae_test")
    with pytest.raises(InputError, match="SAR channel"):
        SegmentationModel(cfg)(torch.zeros(1, 2, 64, 64))
    with pytest.raises(ConfigError, match="unknown task"):
        build_task_model("panoptic", cfg, 2)
    with pytest.raises(ConfigError, match="class names"):
        SegmentationModel(cfg, 2, class_names=["water"])
    with pytest.raises(ConfigError, match="4 block indices"):
        SegmentationModel(cfg, 2, indices=[0, 1])


def test_linear_probe_trains_the_head_only():
    torch.manual_seed(0)
    cfg = make_config("sarmae_test", drop_path_rate=0.1)
    model = ClassificationModel(cfg, 3, linear_probe=True)
    model.train()
    assert not model.encoder.training and model.head.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    logits = model(-12 + 5 * torch.randn(4, 1, 64, 64))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias", "head_norm.weight", "head_norm.bias"}


# ----------------------------------------------------------------------------- segmentation
def test_segmentation_overfits_a_real_tile_with_the_water_recipe():
    torch.manual_seed(0)
    x = _real_db_tiles(2, 64)
    target = (x[:, 0] < -15.0).long()  # dark, water-like pixels: a learnable real pattern
    target[:, :4] = 255  # an unlabelled strip is ignored
    model = SegmentationModel(make_config("sarmae_test"), 2).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = segmentation_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0]


def test_segmentation_loss_semantics():
    target = torch.tensor([[[0, 1], [1, 255]]])  # [1, 2, 2]
    perfect = F.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 20 - 10
    assert segmentation_loss(perfect, target) < 1e-3
    wrong = -perfect
    assert segmentation_loss(wrong, target) > 1.0
    # the ignored pixel does not count, whatever the logits there
    other = perfect.clone()
    other[0, :, 1, 1] = torch.tensor([-50.0, 50.0])
    torch.testing.assert_close(segmentation_loss(other, target), segmentation_loss(perfect, target))
    # weight 3.0 on class 1 makes missing water cost more than missing background
    miss_water = perfect.clone()
    miss_water[0, :, 0, 1] = torch.tensor([1.0, -1.0])
    miss_land = perfect.clone()
    miss_land[0, :, 0, 0] = torch.tensor([-1.0, 1.0])
    ce_only = {"dice_weight": 0.0}
    assert segmentation_loss(miss_water, target, **ce_only) > segmentation_loss(
        miss_land, target, **ce_only
    )
    all_ignored = torch.full_like(target, 255)
    assert segmentation_loss(perfect.requires_grad_(), all_ignored).item() == 0.0
    with pytest.raises(ConfigError, match="class weights"):
        segmentation_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(InputError, match="labels"):
        segmentation_loss(perfect, torch.tensor([[[0, 2], [1, 1]]]))


# ----------------------------------------------------------------------------- detection
BOXES = [
    [[10.0, 20.0, 18.0, 26.0, 0], [40.0, 4.0, 61.0, 13.0, 1]],  # small and elongated ships
    [[30.5, 30.5, 35.5, 33.5, 1]],
]


def test_detection_targets_peak_at_box_centres_and_decode_back_to_the_boxes():
    t = build_detection_targets(BOXES, num_classes=2, map_hw=(16, 16), stride=4)
    assert t["heatmap"].shape == (2, 2, 16, 16) and t["mask"].sum() == 3
    # centre (14, 23) px -> cell (row 5, col 3), offset (0.5, 0.75); peak exactly 1 there
    assert t["heatmap"][0, 0, 5, 3] == 1.0 and t["heatmap"][0, 0].max() == 1.0
    assert t["heatmap"][0, 0, 5, 2] < 1.0
    torch.testing.assert_close(t["offset"][0, :, 5, 3], torch.tensor([0.5, 0.75]))
    torch.testing.assert_close(t["size"][0, :, 5, 3], torch.tensor([8.0, 6.0]))
    assert t["heatmap"][1, 0].max() == 0.0  # class 0 absent from image 1
    # targets read as model outputs give the boxes back through the documented decoding
    for i, boxes in enumerate(BOXES):
        got = _decode(t["heatmap"][i].numpy(), t["size"][i].numpy(), t["offset"][i].numpy(), 4)
        np.testing.assert_allclose(np.array(got), np.array(sorted(boxes)), atol=1e-5)


def test_detection_targets_skip_degenerate_boxes_and_reject_bad_classes():
    t = build_detection_targets([[[5, 5, 5, 9, 0], [70, 70, 80, 80, 0]]], 1, (16, 16))
    assert t["mask"].sum() == 0  # zero width, and a centre outside the 64 px image
    with pytest.raises(InputError, match="class"):
        build_detection_targets([[[0, 0, 4, 4, 3]]], 1, (16, 16))


def test_detection_loss_is_finite_and_decreases_on_a_real_tile():
    torch.manual_seed(0)
    x = _real_db_tiles(2, 64)
    model = DetectionModel(make_config("sarmae_test"), num_classes=2).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        out = detection_loss(model(x), BOXES, stride=model.stride)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append([out.loss.item(), out.heatmap.item(), out.size.item(), out.offset.item()])
    losses = np.array(losses)
    assert np.isfinite(losses).all()
    assert losses[-1, 0] < 0.7 * losses[0, 0]
    assert losses[-1, 2] < losses[0, 2]  # the log-size regression learns too
    with pytest.raises(InputError, match="box lists"):
        detection_loss(model(x), BOXES[:1])


# ------------------------------------------------------------------ full-resolution detail path
def test_detail_path_gives_full_resolution_logits_with_a_pooled_encoder():
    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    x = _real_db_tiles(2, 64)
    model = SegmentationModel(cfg, 2, detail=4, context_pool=2).eval()
    assert model.tile_multiple == 2 * cfg.patch_size
    assert model.head_options()["detail"] == 4 and model.head_options()["context_pool"] == 2
    seen = []
    hook = model.encoder.patch_embed.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    with torch.no_grad():
        logits = model(x)
    hook.remove()
    assert logits.shape == (2, 2, 64, 64)
    assert seen and seen[0][-2:] == (32, 32)  # the encoder read the input pooled by 2


def test_detail_path_follows_a_one_pixel_edge_the_plain_head_cannot():
    """A one-pixel-wide dark line (a dyke between ponds, seen the other way round: a canal)
    is learnable at full resolution and not by logits upsampled from stride 4."""
    torch.manual_seed(0)
    x = _real_db_tiles(2, 64).clone()
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    for k in range(5, 64, 9):
        x[:, 0, :, k] = -25.0  # canals one pixel wide
        target[:, :, k] = 1
    cfg = make_config("sarmae_test")

    def fit(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(60):
            loss = segmentation_loss(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = model.eval()(x).argmax(1)
        inter = ((pred == 1) & (target == 1)).sum().item()
        union = ((pred == 1) | (target == 1)).sum().item()
        return inter / union

    plain = fit(SegmentationModel(cfg, 2).train())
    detail = fit(SegmentationModel(cfg, 2, detail=4, context_pool=2).train())
    assert detail > 0.9
    assert detail > plain + 0.2


def test_detail_options_are_checked():
    cfg = make_config("sarmae_test")
    with pytest.raises(ConfigError, match="context_pool"):
        SegmentationModel(cfg, 2, context_pool=3, detail=4)
    with pytest.raises(ConfigError, match="needs the detail path"):
        SegmentationModel(cfg, 2, context_pool=2)
    with pytest.raises(ConfigError, match="detail"):
        SegmentationModel(cfg, 2, detail=-1)


def test_detail_model_round_trips_through_a_checkpoint(tmp_path):
    from sarmae_core.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = SegmentationModel(make_config("sarmae_test"), 2, detail=4, context_pool=2).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    back = load_checkpoint(path).eval()
    assert (back.detail, back.context_pool) == (4, 2)
    x = _real_db_tiles(1, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), back(x))


# ------------------------------------------------------------- one box per long ship (issue 11)
def test_region_targets_let_every_cell_along_a_long_hull_give_the_whole_hull():
    """A 200 px ship: with ``region`` every regression cell decodes to the full box (so two
    peaks along the hull give one box after NMS); the centre-only targets hold it in one cell."""
    hull = [[[20.0, 60.0, 220.0, 76.0, 0]]]  # 200 x 16 px, centre (120, 68)
    plain = build_detection_targets(hull, 1, (64, 64), stride=4)
    t = build_detection_targets(hull, 1, (64, 64), stride=4, region=True)
    assert plain["weight"].sum() == 1 and (plain["weight"] > 0).sum() == 1
    cells = torch.nonzero(t["weight"][0, 0] > 0)
    assert len(cells) >= 10 and abs(float(t["weight"].sum()) - 1.0) < 1e-5
    assert int(cells[:, 1].max() - cells[:, 1].min()) >= 10  # along the hull, not across
    for row, col in cells.tolist():
        cx = (col + float(t["offset"][0, 0, row, col])) * 4
        cy = (row + float(t["offset"][0, 1, row, col])) * 4
        w, h = t["size"][0, :, row, col].tolist()
        np.testing.assert_allclose([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                                   hull[0][0][:4], atol=1e-4)  # fmt: skip
    # a small ship beside it keeps its own cells: a cell goes to the higher Gaussian
    two = build_detection_targets([hull[0] + [[110.0, 80.0, 126.0, 92.0, 0]]], 1, (64, 64), 4,
                                  region=True)  # fmt: skip
    assert two["size"][0, 0, 21, 29] == 16.0 and two["size"][0, 0, 17, 29] == 200.0


def test_small_target_stem_keeps_the_detection_contract_and_round_trips(tmp_path):
    from sarmae_core.models.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    cfg = make_config("sarmae_test")
    x = _real_db_tiles(2, 64)
    plain = DetectionModel(cfg, centre_region=True).eval()
    model = DetectionModel(cfg, centre_region=True, detail=4).eval()
    assert plain.head_options()["detail"] == 0 and model.head_options()["detail"] == 4
    assert plain.small_target_stem is None
    with torch.no_grad():
        a, b = plain(x), model(x)
        # a new stem starts as the identity on the decoder map: the pretrained map is kept
        coarse = model.decoder_map(model.normalize(x))
        assert torch.equal(model.small_target_stem(model.normalize(x), coarse), coarse)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert b["heatmap"].shape == (2, 1, 16, 16)
    # the stem reads the input's pixels: a bright 2 px target moves the stride-4 map under it
    y = x.clone()
    y[:, :, 30:32, 30:32] = 20.0
    stem = model.small_target_stem
    with torch.no_grad():
        fy, fx = (stem.stem4(stem.stem2(model.normalize(v))) for v in (y, x))
    changed = (fy - fx).abs().amax(dim=(0, 1)) > 1e-6
    assert changed[7, 7] and not changed[0, 0] and not changed[15, 15]
    back = load_checkpoint(save_checkpoint(model, tmp_path / "m.safetensors")).eval()
    assert back.detail == 4
    with torch.no_grad():
        assert all(torch.allclose(b[k], back(x)[k]) for k in b)
    with pytest.raises(ConfigError, match="detail"):
        DetectionModel(cfg, detail=-1)


def test_centre_region_model_has_unbounded_offsets_and_keeps_the_option_in_checkpoints():
    model = DetectionModel(make_config("sarmae_test"), centre_region=True).eval()
    assert model.head_options()["centre_region"] is True
    with torch.no_grad():
        model.offset_head.bias.fill_(3.0)
        off = model(_real_db_tiles(1, 64))["offset"]
    assert float(off.min()) > 1.0  # beyond the sigmoid's [0, 1]
    assert DetectionModel(make_config("sarmae_test")).head_options()["centre_region"] is False

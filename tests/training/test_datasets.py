"""Fine-tuning readers on the real sets in ../shared/data (read in place) and on small files
written here in the formats the shared data lack (COCO JSON, Sen1Floods11 GeoTIFFs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from scipy import ndimage

from sarmae_core.errors import ConfigError, InputError
from sarmae_train.config import FinetuneDataConfig, UnitsConfig
from sarmae_train.datasets import IGNORE, TaskCollate, build_dataset
from sarmae_train.datasets.base import crop_boxes, transform_boxes
from sarmae_train.datasets.ship_masks import mask_boxes
from sarmae_train.imageio import flip_rot, to_model_units

from .conftest import ETCI, HRSID, MSTAR, OMBRIA, S1_VV_DB, needs_shared_data

AMP8 = UnitsConfig("amplitude", scale=1 / 255, floor=0.5 / 255)
ETCI_DB = UnitsConfig("db", scale=35 / 255, offset=-30)


def _ds(fmt, path, split="train", train=False, units=AMP8, **kw):
    cfg = FinetuneDataConfig(root="/", format=fmt, path=str(path), units=units, **kw)
    return build_dataset(cfg, split, "db", train)


@needs_shared_data
def test_mstar_soc_split_counts_and_few_shot_selection():
    train, test = _ds("mstar", MSTAR), _ds("mstar", MSTAR, "test")
    assert (len(train), len(test)) == (2747, 2425)  # the standard SOC split (dataset README)
    assert train.class_names[0] == "2S1" and train.class_names[-1] == "ZSU234"
    s = test[0]
    assert s["image"].shape == (1, 128, 128) and isinstance(s["target"], int)
    few = _ds("mstar", MSTAR, train=True, shots_per_class=3)
    classes = [c for _, c in few.items]
    assert sorted(classes) == sorted(list(range(10)) * 3)
    assert _ds("mstar", MSTAR, train=True, shots_per_class=3).items == few.items  # deterministic
    assert len(_ds("mstar", MSTAR, "test", max_test=7)) == 7


@needs_shared_data
def test_class_folders_without_csv_read_split_folders(tmp_path):
    for split in ("train", "test"):
        for cls in ("BMP2", "T72"):
            (tmp_path / split / cls).mkdir(parents=True)
            for p in sorted((MSTAR / "train" / cls).glob("*.jpeg"))[:2]:
                shutil.copy(p, tmp_path / split / cls / p.name)
    ds = _ds("class_folders", tmp_path, "test")
    assert ds.class_names == ["BMP2", "T72"] and len(ds) == 4


@needs_shared_data
def test_etci_scene_split_union_target_and_nodata_ignored():
    train = _ds("etci", ETCI, units=ETCI_DB)
    test = _ds("etci", ETCI, "test", units=ETCI_DB)
    assert (len(train), len(test)) == (356, 198)  # North Alabama / Nebraska held out
    assert all(i[1].startswith("nebraska") for i in test.items)
    # the Nebraska tile with the most no-data (tiles.csv vv_frac_255)
    import csv

    rows = list(csv.DictReader((ETCI / "tiles.csv").open()))
    worst = max(
        (r for r in rows if r["scene"].startswith("neb")), key=lambda r: float(r["vv_frac_255"])
    )
    idx = next(i for i, it in enumerate(test.items) if it[1] == worst["tile"])
    s = test[idx]
    vv = np.asarray(Image.open(ETCI / worst["scene"] / "vv" / f"{worst['tile']}.png"))
    flood = np.asarray(Image.open(ETCI / worst["scene"] / "flood_label" / f"{worst['tile']}.png"))
    body = np.asarray(
        Image.open(ETCI / worst["scene"] / "water_body_label" / f"{worst['tile']}.png")
    )
    t = s["target"].numpy()
    assert (t == IGNORE).mean() == pytest.approx(float(worst["vv_frac_255"]), abs=1e-3)
    ok = vv != 255
    assert np.array_equal(t[ok], ((flood > 0) | (body > 0))[ok].astype(np.int64))
    # nodata pixels get a finite, unremarkable value; others follow the declared affine
    x = s["image"][0].numpy()
    assert np.allclose(x[ok], vv[ok].astype(np.float32) * 35 / 255 - 30, atol=1e-4)
    assert np.isfinite(x).all() and x[~ok].max() < 0


@needs_shared_data
def test_etci_position_split_holds_out_eastern_columns():
    kw = {"units": ETCI_DB, "options": {"split_by": "position", "test_fraction": 0.2}}
    train, test = _ds("etci", ETCI, **kw), _ds("etci", ETCI, "test", **kw)
    assert len(train) + len(test) == 554 and 0.1 < len(test) / 554 < 0.3
    scene = "nebraska_20170213t002121"
    col = lambda name: int(name.split("_x-")[1].split("_")[0])  # noqa: E731
    assert max(col(n) for t, n in train.items if scene in n) < min(
        col(n) for t, n in test.items if scene in n
    )


@needs_shared_data
def test_etci_margin_surrounds_training_tiles_with_their_split_neighbours_only():
    kw = {"units": ETCI_DB, "options": {"split_by": "position", "test_fraction": 0.2, "margin": 64}}
    train = _ds("etci", ETCI, train=True, **kw)
    test_names = {n for _, n in _ds("etci", ETCI, "test", **kw).items}
    names = {n for _, n in train.items}
    scene = "northal_20190302t234651"
    tile = lambda c, r: f"{scene}_x-{c}_y-{r}"  # noqa: E731
    pos = [tuple(int(v) for v in n.split("_x-")[1].split("_y-")) for n in names if scene in n]

    def read(name):
        vv = np.asarray(Image.open(ETCI / scene / "vv" / f"{name}.png"))
        flood = np.asarray(Image.open(ETCI / scene / "flood_label" / f"{name}.png")) > 127
        body = np.asarray(Image.open(ETCI / scene / "water_body_label" / f"{name}.png")) > 127
        return vv, np.where(vv != 255, flood | body, IGNORE)

    # a training tile whose eastern neighbour is a training tile and whose western one is absent
    c, r = next((c, r) for c, r in pos if tile(c + 1, r) in names and (c - 1, r) not in pos)
    item = next(it for it in train.items if it[1] == tile(c, r))
    got = train.load(item)
    assert got.image.shape == (1, 256 + 128, 256 + 128)
    vv, label = read(tile(c, r))
    assert np.array_equal(got.image[0, 64:-64, 64:-64], vv)
    assert np.array_equal(got.target[64:-64, 64:-64], label)
    east_vv, east_label = read(tile(c + 1, r))
    assert np.array_equal(got.image[0, 64:-64, -64:], east_vv[:, :64])
    assert np.array_equal(got.target[64:-64, -64:], east_label[:, :64])
    assert not got.valid[64:-64, :64].any() and (got.target[64:-64, :64] == IGNORE).all()
    # the westernmost held-out column: a training tile beside it gets no-data, not test pixels
    c, r = next((c, r) for c, r in pos if tile(c + 1, r) in test_names and tile(c - 1, r) in names)
    got = train.load(next(it for it in train.items if it[1] == tile(c, r)))
    assert not got.valid[64:-64, -64:].any()
    assert got.valid[64:-64, :64].mean() > 0.5
    # evaluation reads each tile alone
    evaluated = _ds("etci", ETCI, **kw)
    assert evaluated.load(item).image.shape == (1, 256, 256)
    with pytest.raises(ConfigError, match="margin"):
        _ds("etci", ETCI, units=ETCI_DB, options={"margin": -1})


@needs_shared_data
def test_ombria_official_split_and_binary_masks():
    train = _ds("ombria", OMBRIA, units=UnitsConfig("db", 25 / 255, -25))
    test = _ds(
        "ombria", OMBRIA, "test", units=UnitsConfig("db", 25 / 255, -25), bands=["before", "after"]
    )
    assert (len(train), len(test)) == (624, 70)
    s = test[0]
    assert s["image"].shape == (2, 256, 256)
    assert set(s["target"].unique().tolist()) <= {0, 1}


@needs_shared_data
def test_hrsid_masks_give_boxes_split_by_scene():
    train, test = _ds("ship_masks", HRSID), _ds("ship_masks", HRSID, "test")
    assert (len(train), len(test)) == (30, 6)
    assert {p.name.split("_")[0] for p, _ in test.items} == {"P0007", "P0015"}
    assert not {p.name.split("_")[0] for p, _ in train.items} & {"P0007", "P0015"}
    boxes = [test[i]["target"] for i in range(len(test))] + [
        train[i]["target"] for i in range(len(train))
    ]
    # 8-connected components of at least 4 px: specks touching a hull diagonally join it
    assert sum(len(b) for b in boxes) == 69
    mask = np.asarray(Image.open(test.items[0][1])).max(axis=2)
    b = test[0]["target"].numpy()
    for x0, y0, x1, y1, c in b.astype(int):
        assert c == 0 and mask[y0:y1, x0:x1].any()
        assert not mask[y0:y1, x0 - 1].any() or x0 == 0  # tight on the left edge


@needs_shared_data
def test_pasted_ships_land_on_open_sea_of_a_real_tile_as_whole_hulls_with_their_boxes():
    """Copy-paste on HRSID: ships cut out of the training tiles by their masks go onto the
    open water of a tile (not its port or town), clear of every ship, each with a box around
    exactly its hull."""
    from sarmae_train.datasets.ship_masks import paste_ships

    plain = _ds("ship_masks", HRSID, train=True)
    pasting = _ds("ship_masks", HRSID, train=True, options={"paste_ships": 12})
    bank = pasting._ship_bank()
    # every ship of the 30 training tiles (those the boxes come from), none of the test tiles'
    assert len(bank) == sum(len(plain.load(it).target) for it in plain.items) == 59
    for pixels, paste, hull in bank:
        assert pixels.shape[1:] == paste.shape == hull.shape and (paste >= hull).all()

    def tile(name):
        i = next(i for i, (p, _) in enumerate(plain.items) if p.stem.startswith(name))
        raw = plain.load(plain.items[i])
        return i, np.asarray(to_model_units(raw.image, AMP8, "db")), raw.target

    # a port (P0001) and a coast with a town (P0021): mostly land; one tile of open sea (P0018)
    for name, land_share in [("P0001_1200", 0.8), ("P0021_0_800", 0.75), ("P0018", 0.0)]:
        _, image, target = tile(name)
        smooth = ndimage.uniform_filter(image[0], 31)
        land = smooth > np.percentile(smooth, 5) + 6.0  # 6 dB above the darkest water
        assert land.mean() == pytest.approx(land_share, abs=0.05)
        pasted = on_land = 0
        for seed in range(5):
            out, boxes = paste_ships(image, target, bank, 12, np.random.default_rng(seed))
            old = len(target)
            assert boxes[:old].tolist() == target.tolist()
            changed = out[0] != image[0]
            touched = np.zeros_like(changed)
            for x0, y0, x1, y1, _ in boxes[old:].astype(int):
                pasted += 1
                on_land += land[y0:y1, x0:x1].mean() > 0.5
                assert changed[y0:y1, x0:x1].any()  # the hull is in its box
                touched[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = True
            assert touched[changed].all()  # only the pasted ships (hull and rim) changed
            # no two boxes overlap: every pasted hull stays its own ship
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, b = boxes[i], boxes[j]
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        assert pasted >= 5 * 8 and on_land <= 0.02 * pasted, (name, pasted, on_land)
    coast, _, _ = tile("P0001_1200")
    # a training sample with pasting has more ships; the same seed gives the same sample;
    # the test split never pastes
    a, b = pasting[coast], pasting[coast]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    counts = [len(pasting[i]["target"]) - len(plain[i]["target"]) for i in range(len(plain))]
    assert sum(counts) > 0
    test = _ds("ship_masks", HRSID, "test", options={"paste_ships": 12})
    assert sum(len(test[i]["target"]) for i in range(len(test))) == 69 - 59


def test_mask_boxes_are_pixel_edge_boxes():
    m = np.zeros((20, 30), np.uint8)
    m[2:5, 10:17] = 1
    m[10, 3] = 1  # a one-pixel speck
    assert mask_boxes(m).tolist() == [[10, 2, 17, 5, 0], [3, 10, 4, 11, 0]]
    assert mask_boxes(m, min_area=4).tolist() == [[10, 2, 17, 5, 0]]


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_box_transforms_follow_the_image_transforms(k, flip):
    rng = np.random.default_rng(k)
    m = np.zeros((1, 24, 40), np.float32)
    boxes = np.array([[3, 4, 11, 9, 0], [20, 15, 38, 22, 0]], np.float32)
    for x0, y0, x1, y1, _ in boxes.astype(int):
        m[0, y0:y1, x0:x1] = rng.random() + 1
    moved = flip_rot(m, k, flip)[0]
    got = transform_boxes(boxes, k, flip, 24, 40)
    for (x0, y0, x1, y1, _), b in zip(got.astype(int), boxes, strict=True):
        assert moved[y0:y1, x0:x1].all()  # the box covers its object exactly
        assert moved[y0:y1, x0:x1].size == (b[2] - b[0]) * (b[3] - b[1])


def test_crop_keeps_boxes_whose_centre_stays_and_clips_them():
    boxes = np.array([[0, 0, 10, 10, 0], [50, 50, 70, 60, 0], [95, 5, 120, 15, 0]], np.float32)
    out = crop_boxes(boxes, r0=40, c0=45, h=64, w=64)
    assert out.tolist() == [[5, 10, 25, 20, 0]]
    assert crop_boxes(boxes, 0, 90, 64, 64).tolist() == [[5, 5, 30, 15, 0]]  # centre 107.5 in


def test_object_crop_holds_a_whole_box_and_centres_on_longer_ones():
    from sarmae_train.datasets.base import random_crop

    rng = np.random.default_rng(3)
    image = np.zeros((1, 800, 800), np.float32)
    # a small ship in a corner, a 90 px one, and a hull longer than the crop
    boxes = np.array([[5, 700, 20, 712, 0], [400, 100, 490, 118, 0], [100, 300, 420, 330, 0]])
    whole = {0: 0, 1: 0}
    for _ in range(300):
        img, got = random_crop(image, boxes, 256, "detection", rng, object_crop=1.0)
        assert img.shape == (1, 256, 256)
        lengths = sorted(round(b[2] - b[0]) for b in got)
        assert 15 in lengths or 90 in lengths or 256 in lengths  # one box is always in it
        whole[0] += 15 in lengths
        whole[1] += 90 in lengths
    assert min(whole.values()) > 60  # each small box is held whole in about a third of crops
    # uniform crops of the same chip mostly miss every box
    empty = sum(
        len(random_crop(image, boxes, 256, "detection", rng, object_crop=0.0)[1]) == 0
        for _ in range(300)
    )
    assert empty > 100
    # without boxes, or for masks, the crop is drawn as before (same draws, same result)
    a = random_crop(image, boxes[:0], 256, "detection", np.random.default_rng(1), 1.0)[0]
    b = random_crop(image, boxes[:0], 256, "detection", np.random.default_rng(1), 0.0)[0]
    np.testing.assert_array_equal(a, b)


def test_object_crop_is_a_share():
    from sarmae_core.errors import ConfigError
    from sarmae_train.config import AugmentConfig

    with pytest.raises(ConfigError, match="object_crop"):
        AugmentConfig(object_crop=1.5)


@needs_shared_data
def test_coco_json_reader_matches_the_mask_boxes(tmp_path):
    masks = _ds("ship_masks", HRSID, "test")
    (tmp_path / "JPEGImages").mkdir()
    images, anns = [], []
    for i, (img, _) in enumerate(masks.items[:3]):
        shutil.copy(img, tmp_path / "JPEGImages" / img.name)
        images.append({"id": i + 1, "file_name": img.name, "width": 800, "height": 800})
        for x0, y0, x1, y1, _ in masks[i]["target"].tolist():
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                }
            )
    anns.append({"id": 999, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1})
    (tmp_path / "annotations").mkdir()
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ship"}]}
    (tmp_path / "annotations" / "test2017.json").write_text(json.dumps(coco))
    ds = _ds("coco", tmp_path, "test")
    assert ds.class_names == ["ship"] and len(ds) == 3
    for i in range(3):
        assert torch.equal(ds[i]["target"], masks[i]["target"])  # crowd box ignored
        assert torch.equal(ds[i]["image"], masks[i]["image"])


def test_sen1floods11_geotiffs_split_lists_and_nodata(tmp_path):
    s1, lab = (
        tmp_path / "v1.1/data/flood_events/HandLabeled/S1Hand",
        tmp_path / "v1.1/data/flood_events/HandLabeled/LabelHand",
    )
    s1.mkdir(parents=True)
    lab.mkdir(parents=True)
    with rasterio.open(S1_VV_DB) as src:  # real dB backscatter as the VV band
        vv = src.read(1)[:64, :64]
        profile = {**src.profile, "width": 64, "height": 64, "count": 2, "nodata": None}
    for chip in ("Bolivia_1", "Ghana_2", "India_3"):
        with rasterio.open(s1 / f"{chip}_S1Hand.tif", "w", **profile) as dst:
            dst.write(np.stack([vv, vv - 7]).astype("float32"))
        label = (vv < -15).astype(np.int16)
        label[:4] = -1
        with rasterio.open(
            lab / f"{chip}_LabelHand.tif", "w", **{**profile, "count": 1, "dtype": "int16"}
        ) as dst:
            dst.write(label, 1)
    splits = tmp_path / "v1.1/splits/flood_handlabeled"
    splits.mkdir(parents=True)
    (splits / "flood_test_data.csv").write_text("India_3_S1Hand.tif,India_3_LabelHand.tif\n")
    ds = _ds("sen1floods11", tmp_path, "test", units=UnitsConfig("db"))
    assert ds.items == ["India_3"]
    s = ds[0]
    assert s["image"].shape == (2, 64, 64)
    assert torch.allclose(s["image"][0], torch.from_numpy(vv))  # label no-data keeps the image
    t = s["target"].numpy()
    assert (t[:4] == IGNORE).all() and np.array_equal(t[4:], (vv[4:] < -15).astype(np.int64))


@needs_shared_data
def test_image_mask_folders_generic_reader(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / "test" / sub).mkdir(parents=True)
    ids = ["0001", "0002"]
    for i in ids:
        shutil.copy(
            OMBRIA / "train" / "AFTER" / f"S1_after_{i}.png", tmp_path / "test/images" / f"{i}.png"
        )
        shutil.copy(
            OMBRIA / "train" / "MASK" / f"S1_mask_{i}.png", tmp_path / "test/masks" / f"{i}.png"
        )
    units = UnitsConfig("db", 25 / 255, -25)
    generic = _ds("image_mask_folders", tmp_path, "test", units=units)
    ombria = _ds("ombria", OMBRIA, "train", units=units, max_test=None)
    ref = {ombria.item_id(it): ombria[k] for k, it in enumerate(ombria.items[:2])}
    for k, i in enumerate(ids):
        assert torch.equal(generic[k]["image"], ref[f"train/{i}"]["image"])
        assert torch.equal(generic[k]["target"], ref[f"train/{i}"]["target"])


@needs_shared_data
def test_unreadable_files_are_skipped_with_a_count_and_all_bad_stops(tmp_path, caplog):
    (tmp_path / "train" / "BMP2").mkdir(parents=True)
    for p in sorted((MSTAR / "train" / "BMP2").glob("*.jpeg"))[:3]:
        shutil.copy(p, tmp_path / "train" / "BMP2" / p.name)
    (tmp_path / "train" / "BMP2" / "zz_broken.jpeg").write_bytes(b"\xff\xd8 truncated")
    ds = _ds("class_folders", tmp_path)
    with caplog.at_level("WARNING"):
        batch = TaskCollate("classification", 16, [-12.0])([ds[i] for i in range(len(ds))])
    assert len(batch["id"]) == 3 and len(ds.skipped) == 1
    assert "zz_broken.jpeg" in caplog.text
    for p in (tmp_path / "train" / "BMP2").iterdir():
        p.write_bytes(b"nope")
    with pytest.raises(InputError, match="none of 4 probed samples"):
        _ds("class_folders", tmp_path)


def test_missing_or_empty_dataset_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _ds("mstar", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        _ds("etci", tmp_path / "empty")


def test_collate_pads_to_the_patch_with_the_normalisation_mean():
    samples = [
        {
            "image": torch.zeros(1, 20, 30),
            "target": torch.ones(20, 30, dtype=torch.long),
            "id": "a",
        },
        {
            "image": torch.ones(1, 32, 16),
            "target": torch.zeros(32, 16, dtype=torch.long),
            "id": "b",
        },
        None,
    ]
    b = TaskCollate("segmentation", 16, [-12.0])(samples)
    assert b["image"].shape == (2, 1, 32, 32) and b["size"] == [(20, 30), (32, 16)]
    assert b["image"][0, 0, 25, 0] == -12.0 and b["target"][0, 25, 0] == IGNORE


# ------------------------------------------------------------- scale and calibration jitter
@needs_shared_data
def test_scale_augmentation_coarsens_real_tiles_by_area_and_keeps_labels_aligned():
    from sarmae_train.config import AugmentConfig

    plain = _ds("etci", ETCI, units=ETCI_DB)
    i = max(range(60), key=lambda k: float((plain[k]["target"] == 1).float().mean()))
    ref = plain[i]
    aug = AugmentConfig(flip=False, rot90=False, scale=[0.5, 0.5])
    zoomed = _ds("etci", ETCI, train=True, units=ETCI_DB, augment=aug)[i]
    x, t = ref["image"][0].numpy(), ref["target"].numpy()
    zx, zt = zoomed["image"][0].numpy(), zoomed["target"].numpy()
    assert zx.shape == zt.shape == (128, 128)  # 256 px at 20 m -> 128 px at 40 m
    # area averaging: each output pixel is the mean of its 2 x 2 input block
    blocks = x.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    assert np.abs(zx - blocks).mean() < 0.5  # dB
    # labels stay on the pixels they describe: water is dark in the zoomed image too
    valid = zt != IGNORE
    assert zt[valid].mean() == pytest.approx(t[t != IGNORE].mean(), abs=0.02)
    assert zx[(zt == 1)].mean() < zx[(zt == 0)].mean() - 3


def test_zoom_sample_scales_boxes_and_fills_a_crop_when_shrinking():
    from sarmae_train.datasets.base import zoom_sample

    rng = np.random.default_rng(0)
    image = rng.normal(-12, 3, (1, 300, 300)).astype(np.float32)
    boxes = np.array([[100, 40, 180, 60, 0]], np.float32)
    img, b = zoom_sample(image, boxes, 0.5, "detection", None, rng)
    assert img.shape == (1, 150, 150)
    np.testing.assert_allclose(b[0, :4], [50, 20, 90, 30])
    target = np.zeros((300, 300), np.uint8)
    img, t = zoom_sample(image, target, 0.6, "segmentation", 128, rng)
    assert img.shape[-1] >= 128 and t.shape == img.shape[-2:]  # no padding needed afterwards


def test_db_jitter_moves_level_and_contrast_within_its_bounds():
    from sarmae_train.datasets.base import jitter_db

    rng = np.random.default_rng(1)
    image = np.random.default_rng(0).normal(-12, 4, (2, 64, 64)).astype(np.float32)
    for _ in range(20):
        out = jitter_db(image, rng, 2.0, 0.15)
        shift = np.median(out, axis=(1, 2)) - np.median(image, axis=(1, 2))
        ratio = out.std(axis=(1, 2)) / image.std(axis=(1, 2))
        assert np.all(np.abs(shift) <= 2.0 + 1e-4) and np.all(np.abs(ratio - 1) <= 0.15 + 1e-4)
    np.testing.assert_array_equal(jitter_db(image, rng, 0.0, 0.0), image)


def test_augment_config_refuses_bad_ranges():
    from sarmae_core.errors import ConfigError
    from sarmae_train.config import AugmentConfig

    for bad in ([0.0, 1.0], [1.5, 1.0], [1.0]):
        with pytest.raises(ConfigError, match=r"augment\.scale"):
            AugmentConfig(scale=bad)
    with pytest.raises(ConfigError, match="db_gain"):
        AugmentConfig(db_gain=1.5)

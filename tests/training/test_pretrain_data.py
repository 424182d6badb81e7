"""Pretraining data on real SAR: raster windows, chips, SAR-1M and paired folders, mixed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sarmae_core.errors import InputError
from sarmae_train.config import AugmentConfig, PretrainDataConfig, SourceConfig, UnitsConfig
from sarmae_train.data import build_pretrain_dataset, collate_pretrain
from sarmae_train.sampler import ResumableSampler

from .conftest import MSTAR, OMBRIA, S1_VV_DB, needs_shared_data

AMPLITUDE_8BIT = UnitsConfig("amplitude", scale=1 / 255, floor=0.5 / 255)


def _dataset(sources, window=32, flip=True, seed=0):
    cfg = PretrainDataConfig(root="/", sources=sources, augment=AugmentConfig(flip, flip))
    return build_pretrain_dataset(cfg, window, "db", seed)


def test_raster_windows_are_real_db_and_a_pure_function_of_seed_epoch_index():
    ds = _dataset([SourceConfig("rasters", [str(S1_VV_DB)], windows_per_epoch=8)])
    s = ds[3]
    assert s["sar"].shape == (1, 32, 32) and s["sar"].dtype == torch.float32
    assert -27 < s["sar"].min() and s["sar"].max() < 2  # the scene spans -26.7..1.4 dB
    assert "window row" in s["where"] and not s["paired"]
    assert torch.equal(ds[3]["sar"], s["sar"])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["sar"], s["sar"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["sar"], s["sar"])


def test_intensity_rasters_are_converted_to_the_model_units(tmp_path):
    import rasterio

    with rasterio.open(S1_VV_DB) as src:
        db = src.read(1)
        profile = src.profile
    path = tmp_path / "intensity.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((10 ** (db / 10)).astype("float32"), 1)
    a = _dataset([SourceConfig("rasters", [str(S1_VV_DB)], windows_per_epoch=4)])[2]["sar"]
    b = _dataset(
        [SourceConfig("rasters", [str(path)], units=UnitsConfig("intensity"), windows_per_epoch=4)]
    )[2]["sar"]
    assert torch.allclose(a, b, atol=1e-4)


@needs_shared_data
def test_8bit_amplitude_chips_get_the_declared_affine_and_a_finite_floor():
    chips = sorted((MSTAR / "train" / "2S1").glob("*.jpeg"))[:2]
    ds = _dataset(
        [SourceConfig("chips", [str(p) for p in chips], units=AMPLITUDE_8BIT)],
        window=128,
        flip=False,
    )
    x = ds[0]["sar"]
    dn = np.asarray(Image.open(chips[0]), np.float32)
    expected = 20 * np.log10(np.maximum(dn / 255, 0.5 / 255))
    assert (dn == 0).any()  # MSTAR has zero pixels: the floor is what keeps them finite
    assert torch.allclose(x[0], torch.from_numpy(expected), atol=1e-4)
    assert torch.isfinite(x).all()


def _rgb_of(sar_path, out_path):
    """An 'optical' image aligned to the chip (the chip itself in red): alignment is testable."""
    a = np.asarray(Image.open(sar_path).convert("L"))
    Image.fromarray(np.stack([a, 255 - a, np.zeros_like(a)], -1)).save(out_path)


@needs_shared_data
def test_sar1m_layout_mixes_paired_and_unpaired_with_aligned_augmentation(tmp_path):
    root = tmp_path / "sar1m"
    (root / "SAR").mkdir(parents=True)
    (root / "OPT").mkdir()
    chips = sorted((OMBRIA / "train" / "AFTER").glob("*.png"))[:4]
    for c in chips:
        shutil.copy(c, root / "SAR" / c.name)
    for c in chips[:2]:
        _rgb_of(c, root / "OPT" / c.name)
    (root / "paired.json").write_text(
        json.dumps([{"sar": c.name, "optical": c.name} for c in chips[:2]])
    )
    (root / "unpaired.json").write_text(json.dumps([c.name for c in chips[2:]]))
    ds = _dataset(
        [
            SourceConfig(
                "sar1m", [str(root)], units=UnitsConfig("db", 25 / 255, -25), chip_mode="crop"
            )
        ],
        window=64,
    )
    assert len(ds) == 4 and ds.has_optical
    samples = [ds[i] for i in range(4)]
    assert [s["paired"] for s in samples] == [True, True, False, False]
    for s in samples[:2]:  # crop, quarter turn and flip applied alike to both
        dn = (s["sar"][0].numpy() + 25) * 255 / 25
        assert np.allclose(s["optical"][0] * 255, dn, atol=0.05)
    batch = collate_pretrain(samples)
    assert batch["optical"].shape == (4, 3, 64, 64)
    assert batch["paired"].tolist() == [True, True, False, False]
    assert batch["optical"][2:].abs().sum() == 0
    # what each optical image is, for the teacher-feature cache: file, crop box, turns, flip
    keys = batch["optical_keys"]
    assert keys[2:] == [None, None] and all(k.startswith(str(root / "OPT")) for k in keys[:2])
    assert "rows" in keys[0] and "rot90 x" in keys[0] and "flip" in keys[0]
    ds.set_epoch(1)  # another epoch: another crop and turn, so another key (same file)
    again = [ds[i]["optical_key"] for i in range(2)]
    assert again != keys[:2] and [a.split("|")[0] for a in again] == [
        k.split("|")[0] for k in keys[:2]
    ]


@needs_shared_data
def test_paired_folders_match_by_name_and_unmatched_sar_is_unpaired(tmp_path):
    sar, opt = tmp_path / "s1", tmp_path / "s2"
    sar.mkdir()
    opt.mkdir()
    chips = sorted((OMBRIA / "train" / "BEFORE").glob("*.png"))[:3]
    for c in chips:
        shutil.copy(c, sar / c.name)
    _rgb_of(chips[0], opt / (chips[0].stem + ".jpg"))  # any suffix
    ds = _dataset(
        [
            SourceConfig(
                "paired_folders",
                sar=str(sar),
                optical=str(opt),
                units=UnitsConfig("db", 25 / 255, -25),
            )
        ]
    )
    assert [ds[i]["paired"] for i in range(3)] == [True, False, False]


def test_crops_per_item_draws_several_crops_of_each_pair(tmp_path):
    """A few large co-registered fragments weigh as many crops as asked: each sample of a pair
    is its own random crop, and the optical crop follows the SAR one."""
    sar, opt = tmp_path / "s1", tmp_path / "s2"
    sar.mkdir()
    opt.mkdir()
    chip = sorted((OMBRIA / "train" / "BEFORE").glob("*.png"))[0]
    shutil.copy(chip, sar / chip.name)
    _rgb_of(chip, opt / (chip.stem + ".jpg"))
    source = SourceConfig("paired_folders", sar=str(sar), optical=str(opt),
                          units=UnitsConfig("db", 25 / 255, -25), chip_mode="crop",
                          crops_per_item=5)  # fmt: skip
    ds = _dataset([source], window=32)
    assert len(ds) == 5 and all(ds[i]["paired"] for i in range(5))
    keys = {ds[i]["optical_key"].split("|")[1] for i in range(5)}  # the crop box of each
    assert len(keys) >= 4  # five random 32 px crops of a 256 px chip: (almost) all differ
    with pytest.raises(InputError, match="crops_per_item must be 1, or more with chip_mode: crop"):
        _dataset([SourceConfig("paired_folders", sar=str(sar), optical=str(opt),
                               crops_per_item=5)])  # fmt: skip


@needs_shared_data
def test_sources_mix_in_one_epoch():
    chips = sorted((MSTAR / "train" / "BMP2").glob("*.jpeg"))[:3]
    ds = _dataset(
        [
            SourceConfig("rasters", [str(S1_VV_DB)], windows_per_epoch=5),
            SourceConfig("chips", [str(p) for p in chips], units=AMPLITUDE_8BIT),
        ],
        window=64,
    )
    assert len(ds) == 8
    wheres = [ds[i]["where"] for i in range(8)]
    assert sum("window row" in w for w in wheres) == 5
    assert sum(w.endswith(".jpeg") for w in wheres) == 3


@needs_shared_data
def test_unreadable_chips_are_skipped_and_counted(tmp_path, caplog):
    folder = tmp_path / "chips"
    folder.mkdir()
    for c in sorted((MSTAR / "train" / "D7").glob("*.jpeg"))[:3]:
        shutil.copy(c, folder / c.name)
    (folder / "broken.jpeg").write_bytes(b"\xff\xd8\xff not a jpeg")
    ds = _dataset([SourceConfig("chips", [str(folder)], units=AMPLITUDE_8BIT)], window=64)
    with caplog.at_level("WARNING"):
        samples = [ds[i] for i in range(len(ds))]
    assert sum(s is None for s in samples) == 1
    assert len(ds.skipped) == 1 and "broken.jpeg" in next(iter(ds.skipped.values()))
    assert "skipping unreadable sample" in caplog.text
    batch = collate_pretrain(samples)
    assert batch["sar"].shape[0] == 3 and batch["dropped"] == 1


def test_all_unreadable_empty_or_missing_data_stop_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="none of 3 probed samples can be read"):
        _dataset([SourceConfig("chips", [str(bad)])])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image chips"):
        _dataset([SourceConfig("chips", [str(empty)])])
    with pytest.raises(InputError, match="no such file or folder"):
        _dataset([SourceConfig("rasters", [str(tmp_path / "missing")])])
    with pytest.raises(InputError, match="no pretraining data"):
        _dataset([])
    with pytest.raises(InputError, match="did you mean 'chips'"):
        _dataset([SourceConfig("chipz", [str(bad)])])


def test_sampler_splits_an_epoch_between_ranks_and_resumes_mid_epoch():
    ranks = [ResumableSampler(10, r, 2, seed=3) for r in range(2)]
    for s in ranks:
        s.set_epoch(4)
    a, b = (s.indices() for s in ranks)
    assert len(a) == len(b) == 5 and sorted(a + b) == list(range(10))
    ranks[0].set_epoch(4, start=2)
    assert list(ranks[0]) == a[2:]
    ranks[0].set_epoch(5)
    assert ranks[0].indices() != a

"""Run configuration: shipped YAML files, dotted overrides, and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from sarmae_core.errors import ConfigError
from sarmae_train.config import (
    CONFIG_DIR,
    FinetuneRunConfig,
    PretrainRunConfig,
    load_config,
    resolve_data_path,
)
from sarmae_train.datasets import build_dataset

from .conftest import needs_shared_data

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_four_required_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {
        "pretrain_tiny.yaml",
        "finetune_mstar.yaml",
        "finetune_water_etci.yaml",
        "finetune_ships_hrsid.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_parse_and_declare_units(path):
    cls = PretrainRunConfig if path.name.startswith("pretrain") else FinetuneRunConfig
    cfg = load_config(cls, path)
    raw = yaml.safe_load(path.read_text())
    if cls is PretrainRunConfig:
        assert cfg.data.sources, "a pretraining config needs data sources"
        units = [s["units"]["units"] for s in raw["data"]["sources"]]
    else:
        units = [raw["data"]["units"]["units"]]
    assert all(u in ("db", "intensity", "amplitude") for u in units)  # declared, not defaulted


@needs_shared_data
@pytest.mark.parametrize(
    "name",
    [
        "pretrain_tiny",
        "finetune_mstar",
        "finetune_water_etci",
        "finetune_water_ombria",
        "finetune_ships_hrsid",
    ],
)
def test_configs_on_shared_data_point_at_existing_folders(name):
    path = CONFIG_DIR / f"{name}.yaml"
    if name.startswith("pretrain"):
        cfg = load_config(PretrainRunConfig, path)
        for s in cfg.data.sources:
            assert all(resolve_data_path(cfg.data.root, p).is_dir() for p in s.paths), s.paths
    else:
        cfg = load_config(FinetuneRunConfig, path)
        assert resolve_data_path(cfg.data.root, cfg.data.path).is_dir()


def test_dotted_overrides_set_typed_values():
    cfg = load_config(
        FinetuneRunConfig,
        CONFIG_DIR / "finetune_water_etci.yaml",
        [
            "optim.lr=1e-4",
            "data.units.units=amplitude",
            "data.units.scale=1/255",
            "data.bands=[vv,vh]",
            "optim.epochs=3",
            "model.init=null",
            "eval.baseline=null",
            "data.options.test_scenes=[northal_20190302t234651]",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # YAML 1.1 reads 1e-4 as text
    assert cfg.data.units.units == "amplitude"
    assert cfg.data.units.scale == pytest.approx(1 / 255)
    assert cfg.data.bands == ["vv", "vh"]
    assert cfg.optim.epochs == 3
    assert cfg.model.init is None and cfg.eval.baseline is None
    assert cfg.data.options["test_scenes"] == ["northal_20190302t234651"]
    # untouched values keep the file's
    assert cfg.loss.class_weights == [0.3, 3.0]


def test_list_items_are_overridden_by_index():
    cfg = load_config(
        PretrainRunConfig,
        CONFIG_DIR / "pretrain_tiny.yaml",
        ["data.sources.1.max_items=5", "data.sources.0.units.units=intensity"],
    )
    assert cfg.data.sources[1].max_items == 5
    assert cfg.data.sources[0].units.units == "intensity"
    with pytest.raises(ConfigError, match="index below 3"):
        load_config(
            PretrainRunConfig, CONFIG_DIR / "pretrain_tiny.yaml", ["data.sources.7.max_items=5"]
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1e-4", r"in section 'optim'.*'lrr'.*did you mean 'lr'"),
        ("optimm.lr=1e-4", r"'optimm'.*did you mean 'optim'"),
        ("data.units.unit=db", r"in section 'data.units'.*'unit'.*did you mean 'units'"),
        ("run.save_evry=5", r"did you mean 'save_every'"),
        ("optim.steps=abc", r"optim.steps must be a number"),
        ("optim.steps=2.5", r"optim.steps must be a whole number"),
        ("run.amp=maybe", r"run.amp must be true or false"),
        ("data.units.units=uint8_db_stretched", r"not one of intensity, amplitude, db"),
        ("optim.betas=[0.9]", r"two values"),
        ("nokey", r"not key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(FinetuneRunConfig, CONFIG_DIR / "finetune_mstar.yaml", [override])


def test_model_override_typos_are_caught_by_the_model_registry(tmp_path):
    from sarmae_train.pretrain import build_pretrain_model

    cfg = load_config(
        PretrainRunConfig, CONFIG_DIR / "pretrain_tiny.yaml", ["model.overrides.mask_ration=0.5"]
    )
    with pytest.raises(ConfigError, match="did you mean 'mask_ratio'"):
        build_pretrain_model(cfg)


def test_missing_config_file_lists_the_shipped_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"finetune_mstar\.yaml"):
        load_config(FinetuneRunConfig, tmp_path / "nope.yaml")
    # a bare name finds the shipped config
    assert load_config(FinetuneRunConfig, "finetune_mstar.yaml").data.format == "mstar"


@needs_shared_data
def test_reader_options_and_formats_are_checked():
    cfg = load_config(
        FinetuneRunConfig, CONFIG_DIR / "finetune_water_etci.yaml", ["data.options.test_scene=[x]"]
    )
    with pytest.raises(ConfigError, match=r"test_scene.*did you mean 'test_scenes'"):
        build_dataset(cfg.data, "train", "db", True)
    cfg = load_config(FinetuneRunConfig, CONFIG_DIR / "finetune_mstar.yaml", ["data.format=mstr"])
    with pytest.raises(ConfigError, match="did you mean 'mstar'"):
        build_dataset(cfg.data, "train", "db", True)
    cfg = load_config(FinetuneRunConfig, CONFIG_DIR / "finetune_mstar.yaml", ["data.format=etci"])
    with pytest.raises(ConfigError, match="segmentation set, not classification"):
        build_dataset(cfg.data, "train", "db", True, task="classification")

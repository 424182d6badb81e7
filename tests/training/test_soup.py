"""Model soups: fine-tunes of one recipe from one start (``run.init_seed``), averaged."""

from __future__ import annotations

import json

import pytest
import torch

from sarmae_core.models import load_checkpoint
from sarmae_core.models.checkpoint import read_safetensors
from sarmae_core.models.heads import SegmentationModel

from .conftest import invoke, needs_shared_data

pytestmark = needs_shared_data

WATER = [
    "--config", "finetune_water_etci.yaml", "model.preset=sarmae_test", "run.num_workers=0",
    "run.threads=1", "data.max_train=4", "data.max_test=2", "data.crop=64", "optim.epochs=1",
    "optim.batch_size=2",
]  # fmt: skip


def _finetune(out, *overrides: str):
    invoke("finetune", *WATER, "--out", str(out), *overrides)
    return out / "model.safetensors"


def _head(path) -> dict[str, torch.Tensor]:
    _, tensors = read_safetensors(path)
    return {k: v for k, v in tensors.items() if not k.startswith("encoder.")}


def test_init_seed_fixes_the_starting_weights_and_seed_the_rest(tmp_path):
    # lr 0: every run keeps its starting weights, so they show what init_seed decided
    a = _finetune(tmp_path / "a", "run.seed=1", "run.init_seed=0", "optim.lr=0.0")
    b = _finetune(tmp_path / "b", "run.seed=2", "run.init_seed=0", "optim.lr=0.0")
    c = _finetune(tmp_path / "c", "run.seed=2", "optim.lr=0.0")  # init_seed: run.seed
    ha, hb, hc = _head(a), _head(b), _head(c)
    assert ha and all(torch.equal(ha[k], hb[k]) for k in ha)
    assert any(not torch.equal(hb[k], hc[k]) for k in hb)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["run"]["init_seed"] == 0


def test_soup_averages_fine_tunes_of_one_start_and_evaluates(tmp_path):
    from sarmae_train.soup import main

    runs = [_finetune(tmp_path / f"s{s}", f"run.seed={s}", "run.init_seed=0") for s in (1, 2)]
    _, t1 = read_safetensors(runs[0])
    _, t2 = read_safetensors(runs[1])
    assert any(not torch.equal(t1[k], t2[k]) for k in t1)  # two different fine-tunes
    out = tmp_path / "soup" / "model.safetensors"
    main([str(p) for p in runs] + ["-o", str(out)])
    header, soup = read_safetensors(out)
    for k, v in soup.items():
        assert v.dtype == t1[k].dtype
        if v.is_floating_point():
            torch.testing.assert_close(v, (t1[k].double() + t2[k].double()).div(2).to(v.dtype))
    assert json.loads(header["soup_of"]) == [str(p) for p in runs]
    assert "metrics" not in header  # an ingredient's score is not the soup's
    model = load_checkpoint(out)
    assert isinstance(model, SegmentationModel) and model.class_names == ["background", "water"]
    r = invoke("evaluate", *WATER[:2], "model.preset=sarmae_test", "data.max_test=2",
               "--checkpoint", str(out), "--out", str(tmp_path / "soup.json"))  # fmt: skip
    assert "water IoU" in r.stdout
    assert json.loads((tmp_path / "soup.json").read_text())["pixels"] > 0

    # an existing soup is kept unless asked, and what cannot be averaged is refused by name
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main([str(p) for p in runs] + ["-o", str(out)])
    with pytest.raises(SystemExit, match="two or more"):
        main([str(runs[0]), "-o", str(tmp_path / "one.safetensors")])
    other = _finetune(tmp_path / "other", "run.init_seed=0", "model.drop_path_rate=0.2")
    with pytest.raises(SystemExit, match=r"not the same model .*sarmae_config"):
        main([str(runs[0]), str(other), "-o", str(tmp_path / "mixed.safetensors")])
    assert not (tmp_path / "mixed.safetensors").exists()

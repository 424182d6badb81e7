"""Resumable checkpoints: atomic writes, rotation, corrupt files refused and kept."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sarmae_core.errors import CheckpointError
from sarmae_core.models import create_model
from sarmae_train import state as S
from sarmae_train.optim import param_groups


def _setup(preset="sarmae_test"):
    torch.manual_seed(0)
    model = create_model(preset, img_size=32)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    out = model(-12 + 5 * torch.randn(2, 1, 32, 32))
    out.loss.backward()
    opt.step()
    return model, opt


def _save(folder, model, opt, step, keep_last=2):
    return S.save_state(
        folder,
        model,
        opt,
        step=step,
        epoch=1,
        position=3,
        rng_per_rank=[S.capture_rng()],
        run_config={"optim": {"steps": 9}},
        keep_last=keep_last,
    )


def test_round_trip_restores_weights_optimizer_and_every_rng(tmp_path):
    model, opt = _setup()
    torch.manual_seed(11)
    np.random.seed(12)  # noqa: NPY002 - the global state is what is saved
    random.seed(13)
    path = _save(tmp_path, model, opt, step=5)
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert path.name == "state-step00000005.safetensors"

    st = S.load_state(path)
    assert (st.step, st.epoch, st.position, st.world_size) == (5, 1, 3, 1)
    assert st.run_config == {"optim": {"steps": 9}}
    fresh, fresh_opt = _setup()
    torch.manual_seed(99)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    st.restore(fresh, fresh_opt, rank=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])  # noqa: NPY002
    assert random.random() == expected[2]
    assert fresh_opt.state_dict()["state"][0]["exp_avg"].equal(
        opt.state_dict()["state"][0]["exp_avg"]
    )


def test_rotation_keeps_the_newest_and_never_leaves_temp_files(tmp_path):
    model, opt = _setup()
    for step in (2, 4, 6, 8):
        _save(tmp_path, model, opt, step, keep_last=2)
    assert [p.name for p in S.list_states(tmp_path)] == [
        "state-step00000008.safetensors",
        "state-step00000006.safetensors",
    ]
    assert not list(tmp_path.glob(".*"))


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _setup()
    good = _save(tmp_path, model, opt, 2)

    def crash(tensors, path, metadata):
        with open(path, "wb") as f:  # half a file, then the process "dies"
            f.write(b"\x00" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, model, opt, 4)
    assert S.list_states(tmp_path) == [good]
    assert not list(tmp_path.glob(".*"))
    assert S.load_state(good).step == 2


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_latest_is_refused_and_kept_older_one_used(tmp_path, damage, caplog):
    model, opt = _setup()
    _save(tmp_path, model, opt, 2)
    latest = _save(tmp_path, model, opt, 4)
    data = bytearray(latest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-50] ^= 0xFF  # one bit pattern in the tensor bytes
    latest.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="corrupt"):
        S.load_state(latest)
    with caplog.at_level("WARNING"):
        st = S.find_resume_state(tmp_path)
    assert st.step == 2
    assert "refusing checkpoint state-step00000004" in caplog.text
    assert latest.exists()  # kept for inspection, not deleted
    with pytest.raises(CheckpointError, match="corrupt"):  # named explicitly: refused
        S.find_resume_state(tmp_path, latest)


def test_nothing_to_resume_and_model_only_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        S.find_resume_state(tmp_path)
    from sarmae_core.models import save_checkpoint

    model, _ = _setup()
    plain = save_checkpoint(model, tmp_path / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match="not a resumable training checkpoint"):
        S.load_state(plain)


def test_resuming_into_another_preset_is_refused(tmp_path):
    model, opt = _setup()
    st = S.load_state(_save(tmp_path, model, opt, 2))
    other = create_model("sarmae_vit_tiny", img_size=32)
    with pytest.raises(CheckpointError, match=r"preset: 'sarmae_test' in the checkpoint"):
        S.check_same_model(st, other.config)

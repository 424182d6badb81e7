"""The one runtime both training loops use (issue 14): the same start-up rules for both."""

from __future__ import annotations

import pytest
import torch

from sarmae_train.config import RunConfig
from sarmae_train.runtime import Runtime


def test_runtime_applies_run_settings_and_refuses_a_used_folder(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    try:
        rt = Runtime(RunConfig(out_dir=str(tmp_path / "run"), deterministic=True, seed=3), {},
                     None)  # fmt: skip
        assert torch.are_deterministic_algorithms_enabled()
        assert rt.main and rt.world == 1 and rt.device.type in ("cpu", "cuda")
        a = torch.rand(3)
        Runtime(RunConfig(out_dir=str(tmp_path / "run"), seed=3), {}, None)
        assert torch.equal(a, torch.rand(3))  # every process starts from the run's seed
    finally:
        torch.use_deterministic_algorithms(before)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "state-step00000010.safetensors").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="already holds checkpoints; pass --resume"):
        Runtime(RunConfig(out_dir=str(tmp_path / "run")), {}, None)

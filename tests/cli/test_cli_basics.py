"""The `sarmae` command: presets, info, error handling (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sarmae_core.models import create_model, save_checkpoint


def sarmae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sarmae_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_presets_lists_paper_sizes():
    r = sarmae("presets")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert lines["sarmae_vit_base"][1:4] == ["768", "12", "12"]
    assert lines["sarmae_vit_large"][1:4] == ["1024", "24", "16"]
    assert float(lines["sarmae_vit_base"][4]) > 80  # ~86 M encoder parameters


def test_info_prints_checkpoint_config(tmp_path):
    path = save_checkpoint(create_model("sarmae_test", in_chans=2), tmp_path / "m.safetensors")
    r = sarmae("info", str(path), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["checkpoint"] == "SARMAE"
    assert data["config"]["data"]["polarisations"] == ["VV", "VH"]
    assert data["config"]["speckle"]["max_looks"] is None  # strict JSON: no Infinity


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    r = sarmae("info", str(tmp_path / "missing.onnx"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'missing.onnx'} does not exist"
    assert "Traceback" not in r.stderr
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    r = sarmae("info", str(bad))
    assert r.returncode == 2 and "expected a .onnx model or a .safetensors" in r.stderr


def test_verbosity_means_the_same_in_sarmae_and_sarmae_train():
    """-v one level more per v, -q errors only, from each command's default (issue 14)."""
    import logging

    from click.testing import CliRunner

    from sarmae_core.cli import log_level, main

    assert log_level(logging.WARNING, 0, False) == logging.WARNING
    assert log_level(logging.WARNING, 1, False) == logging.INFO
    assert log_level(logging.WARNING, 5, False) == logging.DEBUG
    assert log_level(logging.INFO, 1, False) == logging.DEBUG
    assert log_level(logging.INFO, 2, True) == logging.ERROR
    pytest.importorskip("torch")
    from sarmae_train.cli import main as train_main

    def options(group) -> list[str]:
        text = CliRunner().invoke(group, ["--help"]).output
        return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("-v", "-q"))]

    assert options(main) == options(train_main) != []

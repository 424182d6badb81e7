"""Helpers for the training tests: the real data, the CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import S1_VV_DB, SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
MSTAR = SHARED_DATA / "mstar_soc10"
ETCI = SHARED_DATA / "etci2021_subset"
OMBRIA = SHARED_DATA / "ombria_s1"
HRSID = SHARED_DATA / "hrsid_mini" / "mini_test"

needs_shared_data = pytest.mark.skipif(
    not (MSTAR.is_dir() and ETCI.is_dir() and OMBRIA.is_dir() and HRSID.is_dir()),
    reason=f"real datasets not found in {SHARED_DATA}",
)

#: The tiny pretraining run of most tests: test preset, 32 px windows of the real dB scene.
TINY_PRETRAIN = [
    "pretrain",
    str(S1_VV_DB),
    "--units",
    "db",
    "--preset",
    "sarmae_test",
    "--window",
    "32",
    "--batch-size",
    "4",
    "--warmup-steps",
    "2",
    "run.threads=1",
    "data.sources.0.windows_per_epoch=16",
    "run.log_every=1",
]


def run_cli(*args: str) -> subprocess.Popen:
    """``python -m sarmae_train.cli ARGS`` in a subprocess (one torch thread, repo on the path)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "sarmae_train.cli", "-q", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def invoke(*args: str, ok: bool = True):
    """The CLI in this process (no start-up cost); asserts success unless ``ok`` is False."""
    from sarmae_train.cli import main

    result = CliRunner().invoke(main, ["-q", *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result

"""The pretraining entry point end to end: SIGKILL + resume, DDP, NaN stop, outputs, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from safetensors.torch import load_file

from sarmae_core.models import load_checkpoint
from sarmae_train.pretrain import weights_digest
from sarmae_train.state import list_states

from .conftest import REPO, S1_VV_DB, TINY_PRETRAIN, invoke, run_cli

KILL_RUN = [*TINY_PRETRAIN, "--steps", "12", "--save-every", "4", "optim.accum_steps=2"]


def _wait_for(path, proc, timeout=60.0):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {path.name} appeared: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


def test_sigkilled_run_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    a = run_cli(*KILL_RUN, "--out", str(full))
    # The sleep after each step leaves time to kill between checkpoints, not only after the last.
    b = run_cli(*KILL_RUN, "--out", str(killed), "--debug-step-sleep", "0.25")
    _wait_for(killed / "checkpoints" / "state-step00000004.safetensors", b)
    os.kill(b.pid, signal.SIGKILL)
    assert b.wait(30) == -signal.SIGKILL
    left = [p.name for p in list_states(killed / "checkpoints")]
    assert left and "state-step00000012.safetensors" not in left  # really killed mid-run

    c = run_cli(*KILL_RUN, "--out", str(killed), "--resume")
    assert c.wait(120) == 0, c.stderr.read()
    assert a.wait(120) == 0, a.stderr.read()

    final_a = load_file(full / "checkpoints" / "state-step00000012.safetensors")
    final_c = load_file(killed / "checkpoints" / "state-step00000012.safetensors")
    compared = [k for k in final_a if k.startswith(("model.", "optim."))]
    assert len(compared) > 50
    for k in compared:
        assert torch.equal(final_a[k], final_c[k]), k
    ma = load_checkpoint(full / "checkpoint.safetensors")
    mc = load_checkpoint(killed / "checkpoint.safetensors")
    assert weights_digest(ma) == weights_digest(mc)
    with (killed / "log.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 13))  # one clean log, as if never interrupted


def test_ddp_two_processes_on_cpu_hold_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sarmae_train.cli",
        "-q",
        *TINY_PRETRAIN,
        "--steps",
        "4",
        "--save-every",
        "2",
        "--out",
        str(out),
        "--debug-dump-weights",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    dumps = [json.loads((out / "debug" / f"rank{i}.json").read_text()) for i in range(2)]
    assert dumps[0]["sha256"] == dumps[1]["sha256"]
    assert dumps[0]["sha256"] == weights_digest(load_checkpoint(out / "checkpoint.safetensors"))
    # distributed sampler: in each epoch (2 steps of 4 per rank) the ranks see disjoint halves
    epoch0 = [set(d["seen"][:8]) for d in dumps]
    assert not epoch0[0] & epoch0[1] and len(epoch0[0] | epoch0[1]) == 16
    # only rank 0 writes the run's files
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.safetensors",
        "checkpoints",
        "config.json",
        "debug",
        "log.csv",
        "recon_epoch000.png",
        "recon_epoch001.png",
        "summary.json",
    ]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def test_outputs_log_quicklook_and_refusals(tmp_path):
    out = tmp_path / "run"
    r = invoke(*TINY_PRETRAIN, "--steps", "5", "--save-every", "2", "--out", str(out))
    assert json.loads(r.stdout.splitlines()[0])["steps"] == 5
    assert [p.name for p in list_states(out / "checkpoints")] == [
        "state-step00000005.safetensors",
        "state-step00000004.safetensors",
    ]
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    # 4 columns (input, speckled, masked, reconstruction) of 32 px + 2 px borders, 4 rows
    png = Image.open(out / "recon_epoch000.png")
    assert png.size == (4 * 36, 4 * 36)

    again = invoke(*TINY_PRETRAIN, "--steps", "5", "--out", str(out), ok=False)
    assert again.exit_code == 2 and "already holds checkpoints; pass --resume" in again.stderr
    other = invoke(
        *TINY_PRETRAIN,
        "--steps",
        "8",
        "--out",
        str(out),
        "--resume",
        "model.overrides.embed_dim=64",
        "model.overrides.num_heads=4",
        ok=False,
    )
    assert other.exit_code == 2 and "was written by another model" in other.stderr
    assert "embed_dim: 32 in the checkpoint, 64 now" in other.stderr


def test_resume_skips_a_corrupt_latest_checkpoint_and_finishes(tmp_path, caplog):
    out = tmp_path / "run"
    invoke(*TINY_PRETRAIN, "--steps", "4", "--save-every", "2", "--out", str(out))
    latest = out / "checkpoints" / "state-step00000004.safetensors"
    latest.write_bytes(latest.read_bytes()[:1000])  # torn file
    leftover = out / "checkpoints" / ".state-step00000006.safetensors.x1.tmp"  # a killed save
    leftover.write_bytes(b"partial")
    r = invoke(*TINY_PRETRAIN, "--steps", "6", "--out", str(out), "--resume-from", str(latest),
               ok=False)  # fmt: skip
    assert r.exit_code == 2 and "is corrupt or truncated" in r.stderr  # named: refused
    with caplog.at_level("WARNING"):
        r = invoke(
            *TINY_PRETRAIN, "--steps", "6", "--save-every", "2", "--out", str(out), "--resume"
        )
    assert "refusing checkpoint state-step00000004" in caplog.text
    assert json.loads(r.stdout.splitlines()[0])["steps_this_session"] == 4  # from step 2
    assert (out / "checkpoints" / "state-step00000006.safetensors").is_file()
    assert not leftover.exists()


def test_nan_loss_stops_and_says_where(tmp_path):
    with rasterio.open(S1_VV_DB) as src:
        profile, data = src.profile, src.read(1)
    bad = tmp_path / "extreme.tif"
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(np.full_like(data, 3e30), 1)  # finite, but its square overflows float32
    args = [a if a != str(S1_VV_DB) else str(bad) for a in TINY_PRETRAIN]
    r = invoke(*args, "--steps", "3", "--out", str(tmp_path / "run"), ok=False)
    assert r.exit_code == 2
    assert "loss became nan at step 1 (epoch 0, micro-batch 1 of the epoch" in r.stderr
    assert "extreme.tif window row" in r.stderr


def test_missing_and_empty_data_folders_stop_cleanly(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("pretrain", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), ok=False)
    assert r.exit_code == 2 and "no image chips" in r.stderr
    r = invoke("pretrain", str(tmp_path / "nothing_here"), "--out", str(tmp_path / "o"), ok=False)
    assert r.exit_code == 2 and "no such file or folder" in r.stderr
    r = invoke("pretrain", str(S1_VV_DB), "optim.stepz=3", ok=False)
    assert r.exit_code == 2 and "did you mean 'steps'" in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_bf16_autocast_on_gpu(tmp_path):  # pragma: no cover - CPU machines
    r = invoke(*TINY_PRETRAIN, "--steps", "3", "--out", str(tmp_path / "gpu"))
    assert json.loads(r.stdout.splitlines()[0])["steps"] == 3

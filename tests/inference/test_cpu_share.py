"""The model leaves a core to the polygon tracer while it traces (CpuShare, run_sharing)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from sarmae_core.inference import OnnxBackend
from sarmae_core.inference.geo.aoi import resolve_aoi
from sarmae_core.inference.model.backends import physical_cores
from sarmae_core.inference.notes import Notes
from sarmae_core.inference.scene.source import SarSource
from sarmae_core.inference.sweep.engine import Canceller, CpuShare, SweepStats, run_tiles
from sarmae_core.inference.sweep.windows import TileGrid


def test_physical_cores_counts_the_cores_this_process_may_use() -> None:
    n = physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_run_sharing_uses_a_thread_fewer_and_gives_the_same_outputs(models) -> None:
    x = np.linspace(-25, 0, 3 * 64 * 64, dtype=np.float32).reshape(3, 1, 64, 64)
    two = OnnxBackend(models["water"], threads=2)
    full = two.run(x)["probabilities"]
    np.testing.assert_allclose(two.run_sharing(x)["probabilities"], full, atol=1e-6)
    assert two._sharing is not two.session
    assert two._sharing.get_session_options().intra_op_num_threads == 1
    assert two.session.get_session_options().intra_op_num_threads == 2  # unchanged
    # one thread already: nothing fewer to run with, the same session
    one = OnnxBackend(models["water"], threads=1)
    np.testing.assert_allclose(one.run_sharing(x)["probabilities"], full, atol=1e-6)
    assert one._sharing is one.session


def test_cpu_share_says_busy_while_any_worker_is() -> None:
    cpu = CpuShare()
    assert not cpu.contended
    with cpu.busy():
        assert cpu.contended
        with cpu.busy():  # a second worker
            assert cpu.contended
        assert cpu.contended
    assert not cpu.contended
    done = threading.Event()

    def worker() -> None:
        with cpu.busy():
            done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    while not cpu.contended:
        pass
    done.set()
    t.join()
    assert not cpu.contended


def _sweep(s1_db: Path, backend: OnnxBackend, cpu: CpuShare | None) -> tuple[list, SweepStats]:
    stats = SweepStats()
    notes = Notes()
    with SarSource(s1_db, backend.info, notes=notes, units="db") as src:
        region = resolve_aoi(None, None, src.crs, src.transform, src.width, src.height, notes,
                             src.fileio)  # fmt: skip
        grid = TileGrid(region.height, region.width, 64, 16)
        tiles = run_tiles(src, region, backend, grid, 4, Canceller(None), stats, lambda n: None,
                          cpu)  # fmt: skip
        out = [(t, None if o is None else o["probabilities"].copy()) for t, o, _ in tiles]
    return out, stats


def test_the_sweep_runs_batches_with_a_thread_fewer_while_a_worker_is_busy(
    s1_db: Path, models
) -> None:
    backend = OnnxBackend(models["water"], threads=2)
    alone, stats = _sweep(s1_db, backend, None)
    assert stats.shared_s == 0.0 and stats.model_s > 0
    cpu = CpuShare()
    with cpu.busy():  # the tracer busy for the whole sweep: every batch shares
        shared, stats = _sweep(s1_db, backend, cpu)
    assert stats.shared_s == stats.model_s > 0
    assert backend._sharing.get_session_options().intra_op_num_threads == 1
    idle, stats = _sweep(s1_db, backend, cpu)  # nobody busy: no batch shares
    assert stats.shared_s == 0.0
    for (ta, a), (tb, b), (tc, c) in zip(alone, shared, idle, strict=True):
        assert ta == tb == tc
        if a is not None:
            np.testing.assert_allclose(b, a, atol=1e-6)
            np.testing.assert_allclose(c, a, atol=1e-6)

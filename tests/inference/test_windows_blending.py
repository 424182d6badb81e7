"""Tile grid and streaming blender: coverage, edges, exact identity, bounded buffer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sarmae_core.errors import ConfigError
from sarmae_core.inference.sweep.blending import (
    StreamingBlender,
    blend_weights,
    ramp,
    weight_sums,
)
from sarmae_core.inference.sweep.windows import TileGrid, axis_starts


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200, 257])
def test_tiles_cover_the_axis_and_end_flush_with_it(length: int) -> None:
    starts = axis_starts(length, 64, 16)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + 64] = True
    assert covered.all()
    assert starts == sorted(starts)
    # Only an axis shorter than a tile is padded; otherwise the last tile ends on the edge.
    assert starts[-1] + 64 == length or (length < 64 and starts == [0])
    assert all(b - a <= 48 for a, b in itertools.pairwise(starts))


def test_cores_partition_the_region() -> None:
    grid = TileGrid(150, 230, 64, 16)
    owner = np.zeros((150, 230), int)
    for t in grid:
        r0, r1, c0, c1 = t.core
        assert t.row <= r0 and r1 <= t.row + t.height and t.col <= c0 and c1 <= t.col + t.width
        owner[r0:r1, c0:c1] += 1
    assert (owner == 1).all()


def test_small_region_gives_one_tile() -> None:
    (tile,) = list(TileGrid(10, 20, 64, 16))
    assert (tile.height, tile.width) == (10, 20)
    assert tile.first_row and tile.last_row and tile.first_col and tile.last_col


@pytest.mark.parametrize("overlap", [-1, 64, 100])
def test_bad_overlap_is_refused(overlap: int) -> None:
    with pytest.raises(ConfigError, match="overlap"):
        TileGrid(100, 100, 64, overlap)


def test_ramps_are_positive_and_complementary() -> None:
    r = ramp(16)
    assert (r > 0).all() and (r < 1).all()
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)


def test_weights_are_one_on_region_edges_and_ramp_inside() -> None:
    first, *_ = TileGrid(200, 200, 64, 16)
    w = blend_weights(first, 16)
    assert w[0, 0] == 1.0 and w[0, 30] == 1.0  # raster border: nothing to blend with
    assert w[-1, 30] < 0.01 and w[30, -1] < 0.01  # faces the next tiles
    assert (w > 0).all()


def test_streaming_blender_reproduces_identity_and_streams() -> None:
    rng = np.random.default_rng(0)
    h, w, tile, overlap, chunk = 300, 170, 64, 16, 32
    x = rng.normal(size=(2, h, w)).astype(np.float32)
    out = np.full_like(x, np.nan)
    calls: list[int] = []

    def sink(row: int, values: np.ndarray, valid: np.ndarray) -> None:
        calls.append(row)
        out[:, row : row + values.shape[1]] = values
        assert valid.all()

    grid = TileGrid(h, w, tile, overlap)
    blender = StreamingBlender(grid, 2, chunk, sink)
    for t in grid:
        blender.flush(t.row)
        sl = np.s_[:, t.row : t.row + t.height, t.col : t.col + t.width]
        blender.add(t, x[sl], np.ones((t.height, t.width), bool))
    blender.flush(h)
    np.testing.assert_allclose(out, x, rtol=1e-6, atol=1e-6)
    assert calls == sorted(calls) and calls[0] == 0
    assert len(calls) == -(-h // chunk)  # whole chunks, in order, each once
    # The buffer holds about one tile row, not the raster: memory independent of height.
    assert blender._acc.shape[1] == tile + chunk


@pytest.mark.parametrize("kind", ["cosine", "uniform"])
def test_the_sum_of_windows_from_two_profiles_equals_the_sum_over_tiles(kind: str) -> None:
    """sum(w) is never accumulated: the grid's row and column sums give it exactly, also where
    the last tiles overlap their neighbours by more than the overlap."""
    grid = TileGrid(300, 170, 64, 16)
    total = np.zeros((300, 170))
    for t in grid:
        total[t.row : t.row + t.height, t.col : t.col + t.width] += blend_weights(t, 16, kind)
    rows, cols = weight_sums(grid, kind)
    np.testing.assert_allclose(np.outer(rows, cols), total, rtol=1e-6)


def test_tiles_without_valid_pixels_leave_the_weights_and_the_map() -> None:
    """Tiles the sweep skips (no valid pixel: a nodata border, outside the area of interest)
    are taken out of sum(w), so the tiles beside them keep their values exactly, up to their
    edge, and the skipped tiles' own pixels come out as no data."""
    rng = np.random.default_rng(1)
    h, w, tile, overlap, chunk = 300, 170, 64, 16, 32
    x = rng.normal(size=(1, h, w)).astype(np.float32)
    grid = TileGrid(h, w, tile, overlap)
    tiles = list(grid)
    skipped = {tiles[0], tiles[5], tiles[len(tiles) // 2]}
    valid_px = np.ones((h, w), bool)
    for t in skipped:
        valid_px[t.row : t.row + t.height, t.col : t.col + t.width] = False
    out = np.full_like(x, np.nan)
    got_valid = np.zeros((h, w), bool)

    def sink(row: int, values: np.ndarray, valid: np.ndarray) -> None:
        out[:, row : row + values.shape[1]] = values
        got_valid[row : row + values.shape[1]] = valid

    blender = StreamingBlender(grid, 1, chunk, sink)
    for t in tiles:
        blender.flush(t.row)
        v = valid_px[t.row : t.row + t.height, t.col : t.col + t.width]
        if t in skipped:
            blender.skip(t)
        else:
            blender.add(t, x[:, t.row : t.row + t.height, t.col : t.col + t.width], v)
    blender.flush(h)
    np.testing.assert_array_equal(got_valid, valid_px)
    np.testing.assert_allclose(out[:, valid_px], x[:, valid_px], rtol=1e-5, atol=1e-5)


def test_blender_rejects_tiles_out_of_order() -> None:
    grid = list(TileGrid(300, 64, 64, 16))
    blender = StreamingBlender(TileGrid(300, 64, 64, 16), 1, 32, lambda *a: None)
    blender.flush(grid[-1].row)
    with pytest.raises(RuntimeError, match="row-major"):
        t = grid[0]
        blender.add(t, np.zeros((1, 64, 64)), np.ones((64, 64), bool))

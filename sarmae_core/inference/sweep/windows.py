"""The tile grid of a sliding-window sweep: where each tile goes, which pixels it owns.

Pure integer arithmetic, no I/O. Tiles step by ``tile - overlap``; the last tile of a row or
column is moved back so that it ends on the raster edge instead of hanging over it, so only a
raster smaller than one tile is ever padded (and padding is the part of a tile the blender never
reads back). Tiles are listed row-major so that the rows above the current tile row are final
and can be streamed out (:mod:`sarmae_core.inference.sweep.blending`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import ConfigError


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)`` along one axis.

    Args:
        length: pixels along the axis (>= 1).
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles (``0 <= overlap < tile``).

    Returns:
        Increasing offsets; the last tile ends exactly at ``length`` when ``length >= tile``,
        and a single tile at 0 covers an axis shorter than one tile.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # flush with the edge: no padding, a larger last overlap
    return starts


def core_bounds(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into one interval per tile, cut in the middle of each overlap.

    Every pixel belongs to exactly one tile's core. Detections are kept only by the tile whose
    core holds their centre, where the model saw the most context around them.
    """
    cuts = [0]
    for prev, start in itertools.pairwise(starts):
        cuts.append((start + min(prev + tile, length)) // 2)
    cuts.append(length)
    return list(itertools.pairwise(cuts))


@dataclass(frozen=True)
class Tile:
    """One tile of the grid.

    Attributes:
        row, col: offset of the tile in the swept region, pixels.
        height, width: pixels of the region inside the tile (smaller than the tile side only
            when the region is smaller than one tile; the rest is padding).
        first_row, last_row, first_col, last_col: whether the tile touches that region edge
            (no blending ramp there: nothing on the other side to blend with).
        core: ``(row0, row1, col0, col1)`` region pixels this tile owns, in region offsets.
    """

    row: int
    col: int
    height: int
    width: int
    first_row: bool
    last_row: bool
    first_col: bool
    last_col: bool
    core: tuple[int, int, int, int]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of side ``tile`` with ``overlap`` covering a ``height`` x ``width`` region.

    Args:
        height, width: region size in pixels (>= 1 each).
        tile: tile side in pixels.
        overlap: pixels shared by neighbouring tiles, ``0 <= overlap < tile``.

    Raises:
        ConfigError: a non-positive size or an overlap that leaves no stride.
    """

    height: int
    width: int
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        if self.tile < 1:
            raise ConfigError(f"tile size must be positive, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ConfigError(
                f"overlap must be at least 0 and smaller than the tile ({self.tile} px), "
                f"got {self.overlap}"
            )
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"cannot tile an empty region ({self.height} x {self.width} px)")

    @property
    def row_starts(self) -> list[int]:
        return axis_starts(self.height, self.tile, self.overlap)

    @property
    def col_starts(self) -> list[int]:
        return axis_starts(self.width, self.tile, self.overlap)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def __iter__(self) -> Iterator[Tile]:
        rows, cols = self.row_starts, self.col_starts
        row_cores = core_bounds(rows, self.tile, self.height)
        col_cores = core_bounds(cols, self.tile, self.width)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                yield Tile(
                    row=r,
                    col=c,
                    height=min(self.tile, self.height - r),
                    width=min(self.tile, self.width - c),
                    first_row=i == 0,
                    last_row=i == len(rows) - 1,
                    first_col=j == 0,
                    last_col=j == len(cols) - 1,
                    core=(*row_cores[i], *col_cores[j]),
                )

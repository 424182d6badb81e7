"""The window sweep: read tiles, batch them through a backend, stitch or decode the outputs.

Tiles are read one window at a time and go through the model in batches; segmentation outputs
are blended and streamed to the sinks (:mod:`~sarmae_core.inference.sweep.blending`), detections are
kept by the tile that owns their centre and suppressed across tiles at the end. Invalid pixels
(nodata, NaN, outside the area of interest) are filled with the tile's mean before the model
sees them (a neutral value, unlike 0, which is a bright -0 dB or a dark 0 intensity) and are
nodata in every output; tiles without one valid pixel are not run at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ...errors import CancelledError
from ..geo.aoi import Region
from ..model.backends import Backend
from ..model.detection import (
    Detections,
    cut_edges,
    merge_cut_boxes,
    merge_fragments,
    nms,
    tile_detections,
)
from ..scene.source import SarSource
from .blending import Sink, StreamingBlender
from .windows import Tile, TileGrid

#: A box side this close to a tile edge (px) was cut by it: a stride-4 heatmap places box
#: sides to about a cell, CFAR to a pixel.
CUT_MARGIN = 4.0


@dataclass
class SweepStats:
    """Counters and timings of one sweep (seconds)."""

    tiles: int = 0
    tiles_run: int = 0
    valid_pixels: int = 0
    read_s: float = 0.0
    model_s: float = 0.0
    wait_s: float = 0.0  # the sweep waiting for the model (it runs a batch ahead)
    stitch_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class Canceller:
    """Checks a cancel flag: a ``threading.Event``, a callable (``QgsTask.isCanceled``) or None."""

    def __init__(self, cancel: object | None) -> None:
        self.cancel = cancel

    def cancelled(self) -> bool:
        c = self.cancel
        if c is None:
            return False
        if hasattr(c, "is_set"):
            return bool(c.is_set())
        return bool(c())  # type: ignore[operator]

    def check(self) -> None:
        if self.cancelled():
            raise CancelledError("cancelled by the user; nothing was written")


def prepare_tile(data: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Fill invalid pixels with each channel's valid mean and pad to ``size`` x ``size``.

    Padding mirrors the data (``symmetric``) rather than adding zeros, so that the model sees
    plausible texture beyond the edge of a raster smaller than a tile.
    """
    if not valid.all():
        for c in range(data.shape[0]):
            data[c][~valid] = data[c][valid].mean()
    pad_h, pad_w = size - data.shape[1], size - data.shape[2]
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w)), mode="symmetric")
    return data


def run_tiles(
    source: SarSource,
    region: Region,
    backend: Backend,
    grid: TileGrid,
    batch_size: int,
    canceller: Canceller,
    stats: SweepStats,
    progress: Callable[[int], None],
) -> Iterator[tuple[Tile, dict[str, np.ndarray] | None, np.ndarray]]:
    """Yield ``(tile, outputs of this tile or None if skipped, valid mask)`` in grid order.

    Outputs are the backend's arrays for one tile (batch axis removed), still padded.

    The model runs one batch ahead in a worker thread: while it works on batch k (onnxruntime,
    torch and GDAL release the GIL), this thread reads batch k + 1 and the caller blends,
    regrids and writes batch k - 1, so at GRD size the work outside the model hides behind it
    instead of adding to it (``benchmarks/scene.py`` prints the ratio). At most two batches are
    in flight; a cancel or an error waits for the running batch (well under a second) and
    drops the rest.
    """
    batch: list[tuple[Tile, np.ndarray | None, np.ndarray]] = []
    pending: tuple[list, Future | None] | None = None  # the batch the model is running

    def run(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        outputs = backend.run(np.stack(arrays))
        stats.model_s += time.perf_counter() - t
        return outputs

    def submit() -> tuple[list, Future | None]:
        arrays = [a for _, a, _ in batch if a is not None]
        stats.tiles_run += len(arrays)
        future = pool.submit(run, arrays) if arrays else None
        return list(batch), future

    def results(done: tuple[list, Future | None]):
        queue, future = done
        t = time.perf_counter()
        outputs = future.result() if future is not None else {}
        stats.wait_s += time.perf_counter() - t
        k = 0
        for tile, array, valid in queue:
            if array is None:
                yield tile, None, valid
            else:
                yield tile, {name: v[k] for name, v in outputs.items()}, valid
                k += 1
        progress(len(queue))

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sarmae-model")
    try:
        for tile in grid:
            canceller.check()
            t = time.perf_counter()
            row, col = region.row + tile.row, region.col + tile.col
            data, valid = source.read(row, col, tile.height, tile.width)
            inside = region.mask(tile.row, tile.col, tile.height, tile.width)
            if inside is not None:
                valid &= inside
            array = prepare_tile(data, valid, grid.tile) if valid.any() else None
            stats.read_s += time.perf_counter() - t
            stats.tiles += 1
            batch.append((tile, array, valid))
            if sum(a is not None for _, a, _ in batch) >= batch_size:
                running, pending = pending, submit()
                batch.clear()
                if running is not None:
                    yield from results(running)
        if batch:
            running, pending = pending, submit()
            batch.clear()
            if running is not None:
                yield from results(running)
        if pending is not None:
            done, pending = pending, None
            yield from results(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def sweep_segmentation(
    tiles: Iterator[tuple[Tile, dict[str, np.ndarray] | None, np.ndarray]],
    grid: TileGrid,
    keep: list[int],
    chunk_rows: int,
    sink: Sink,
    stats: SweepStats,
    blending: str = "cosine",
) -> None:
    """Blend channels ``keep`` of each tile's ``probabilities``; stream finished rows to ``sink``.

    A two-class model keeps only its foreground channel: the background is its complement,
    blending commutes with that, and the accumulator (the run's largest array) halves.
    """
    blender = StreamingBlender(grid, len(keep), chunk_rows, sink, blending)
    for tile, out, valid in tiles:
        t = time.perf_counter()
        blender.flush(tile.row)  # every tile above this row has been added
        if out is not None:
            blender.add(tile, out["probabilities"][keep, : tile.height, : tile.width], valid)
        else:
            blender.skip(tile)
        stats.stitch_s += time.perf_counter() - t
    t = time.perf_counter()
    blender.flush(grid.height)
    stats.stitch_s += time.perf_counter() - t


def sweep_detection(
    tiles: Iterator[tuple[Tile, dict[str, np.ndarray] | None, np.ndarray]],
    grid: TileGrid,
    confidence: float,
    iou_threshold: float,
    stats: SweepStats,
) -> Detections:
    """Detections of the whole region, in region pixels, each object once.

    A tile keeps the detections whose centre lies in its core (the pixels it owns, cut in the
    middle of each overlap) and on a valid pixel. Boxes cut by a tile edge are then joined
    with the rest of their object seen by the next tile (a ship across a border or longer than
    a tile: one box over the whole hull), NMS over the whole region removes what two tiles
    still both reported, and overlapping pieces of one hull on one line that NMS keeps apart
    (IoU below its threshold) are joined (:func:`.detection.merge_fragments`).
    """
    found: list[Detections] = []
    cuts: list[np.ndarray] = []
    for tile, out, valid in tiles:
        if out is None:
            continue
        t = time.perf_counter()
        r0, r1, c0, c1 = tile.core
        stats.valid_pixels += int(
            valid[r0 - tile.row : r1 - tile.row, c0 - tile.col : c1 - tile.col].sum()
        )
        dets = tile_detections(out, confidence, grid.tile)
        if len(dets):
            cx = (dets.boxes[:, 0] + dets.boxes[:, 2]) / 2
            cy = (dets.boxes[:, 1] + dets.boxes[:, 3]) / 2
            ix, iy = np.floor(cx).astype(int), np.floor(cy).astype(int)
            keep = (
                (iy + tile.row >= r0) & (iy + tile.row < r1) & (ix + tile.col >= c0)
                & (ix + tile.col < c1) & (iy < tile.height) & (ix < tile.width)
                & (iy >= 0) & (ix >= 0)
            )  # fmt: skip
            keep[keep] &= valid[iy[keep], ix[keep]]
            dets = dets.select(np.nonzero(keep)[0])
            dets.boxes += np.array([tile.col, tile.row, tile.col, tile.row], dtype=np.float64)
            found.append(dets)
            window = (tile.row, tile.col, tile.height, tile.width)
            cuts.append(cut_edges(dets.boxes, window, (grid.height, grid.width), CUT_MARGIN))
        stats.stitch_s += time.perf_counter() - t
    t = time.perf_counter()
    merged = merge_cut_boxes(Detections.concat(found), np.concatenate(cuts or [np.zeros((0, 4))]))
    # NMS first: near-duplicates (neighbouring peaks of one hull) are suppressed, not unioned
    result = merge_fragments(nms(merged, iou_threshold))
    stats.stitch_s += time.perf_counter() - t
    return result

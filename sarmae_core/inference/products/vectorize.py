"""Class maps to polygons and detections to boxes, written to GeoPackages.

Polygons are traced strip by strip while the sweep makes the class map (:mod:`.strips`: the
regions joined across strip edges, as one trace of the whole raster gives them) and cleaned in
batches, in pixel coordinates: small holes filled, simplified (by the IO backend), measured in
m2 on the ground (:class:`~sarmae_core.inference.geo.geodesy.GridAreas`: each row's pixel area
integrated over the shape, right in EPSG:4326 too, and equal to the class areas of the run) and
filtered by area; then moved to the CRS and written by the backend's GeoPackage writer.

Memory follows a strip of the map and the regions that cross its edges, not the scene: a
region too large to hold (a sea with tens of thousands of speckle holes) is written in pieces
cut along strip edges (:mod:`.strips`). With an area filter set, the strips are sieved first
(:mod:`.sieve`), so specks and pinholes are never traced.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geo.geodesy import EqualArea, GridAreas
from ..geo.geometry import Polygon
from ..geo.georef import Crs, Transform
from ..io.raster_io import FeatureWriter, RasterIO
from ..model.detection import Detections
from .sieve import sieve_pixels
from .strips import StripTracer

#: Polygons cleaned and measured together (one call per batch).
_BATCH = 2000
#: Row chunks waiting for the polygon worker at most (a few strips).
_QUEUED_CHUNKS = 16


@dataclass
class PolygonOptions:
    """How polygons are cleaned.

    Attributes:
        min_area_m2: drop polygons smaller than this (after filling and simplifying).
        fill_holes_m2: fill holes smaller than this (``inf`` fills every hole).
        simplify_m: simplification tolerance (topology preserving with GDAL's bindings),
            metres on the ground.
    """

    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0


def sieve_thresholds(
    area: EqualArea | None,
    transform: Transform,
    width: int,
    height: int,
    options: PolygonOptions,
) -> tuple[int, int]:
    """Pixels below which regions are removed and holes filled before tracing (0: no sieve):
    the specks the area filters would drop anyway, sieved away as pixels; none without a CRS
    (no areas on the ground)."""
    if area is None:
        return 0, 0
    largest = float(np.max(area.row_pixel_areas(transform, width, height)))
    remove = sieve_pixels(options.min_area_m2, largest)
    fill = sieve_pixels(options.fill_holes_m2, largest)
    return (remove if remove > 1 else 0), (fill if fill > 1 else 0)  # a 1 px sieve does nothing


class PolygonProduct:
    """The polygons of a class map, made as its rows come: ``product(row, classes)``.

    Args:
        fileio: the IO backend that traces, joins, simplifies and writes.
        out: the layer receiving cleaned polygons (closed by :meth:`finish` or :meth:`close`).
        class_names: names by class index.
        transform, width, height: the class map's grid.
        pixel_size_m: ground pixel size, to turn metre options into pixels.
        area: measures areas in m2 (None without a CRS: no areas, no area filters).
        options: cleaning options.
        check_cancel: raises :class:`~sarmae_core.errors.CancelledError` to stop.
    """

    def __init__(
        self,
        fileio: RasterIO,
        out: FeatureWriter,
        class_names: Sequence[str],
        transform: Transform,
        width: int,
        height: int,
        pixel_size_m: tuple[float, float] | None,
        area: EqualArea | None,
        options: PolygonOptions,
        check_cancel: Callable[[], None],
    ) -> None:
        self.fileio, self.out, self.class_names = fileio, out, list(class_names)
        self._check_cancel = check_cancel
        self.transform, self.options = transform, options
        # Geometry work in pixel units (moved to the CRS as it is written); the options are in
        # metres on the ground. Without a CRS a tolerance in metres means nothing.
        self.tolerance_px = options.simplify_m / pixel_size_m[0] if pixel_size_m else 0.0
        self.measure = GridAreas(area, transform, width, height) if area is not None else None
        remove, fill = sieve_thresholds(area, transform, width, height, options)
        self.tracer = StripTracer(fileio, width, height, self._add, check_cancel, remove, fill)
        self.total_m2 = 0.0
        self.wait_s = 0.0
        self._batch: list[tuple[Polygon, int]] = []
        self._finish_s = 0.0
        self._write_s = 0.0
        # The rows go to a worker thread: a strip takes seconds to trace at scene width, and
        # the sweep must keep feeding the model meanwhile (GDAL traces without the GIL).
        # The queue is bounded so that a worker behind holds the sweep, not its memory.
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def seconds(self) -> float:
        """Time spent tracing, cleaning and writing so far (in the worker thread)."""
        return self.tracer.seconds + self._finish_s

    @property
    def stages(self) -> dict[str, float]:
        """:attr:`seconds` by step: ``sieve``, ``trace`` (the backend's), ``join`` (pieces at
        strip seams), ``write`` (clean, measure and write the polygons, close the file) and
        ``other`` (the seam bookkeeping between strips, rows handed over)."""
        steps = {**self.tracer.timings, "write": self._write_s}
        return {**steps, "other": max(0.0, self.seconds - sum(steps.values()))}

    def __call__(self, row: int, classes: np.ndarray) -> None:
        """Rows of the class map in order (0: background or no data, not traced; the array
        is handed over, not copied). Returns at once; an error of the worker comes back here."""
        self._raise()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="sarmae-polygons",
                                            daemon=True)  # fmt: skip
            self._worker.start()
        self._queue.put((row, classes))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after an error, drain the queue without tracing
                try:
                    self.tracer(*item)
                except BaseException as exc:  # handed to the sweep's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def _add(self, polygon: Polygon, value: int) -> None:
        self._batch.append((polygon, value))
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._check_cancel()  # a batch of a map of speckle takes a while
        t = time.perf_counter()
        self.total_m2 += _write_batch(self.fileio, self._batch, self.out, self.class_names,
                                      self.measure, self.options, self.tolerance_px,
                                      self.transform)  # fmt: skip
        self._batch.clear()
        self._write_s += time.perf_counter() - t

    def finish(self) -> float:
        """Wait for the worker, trace the last rows and write everything; the total area
        written in m2 (NaN without a CRS). ``wait_s`` says how long the sweep's thread
        waited for the worker here."""
        t = time.perf_counter()
        self._stop()
        self.wait_s = time.perf_counter() - t
        self._raise()
        self.tracer.finish()  # its time is the tracer's own
        t = time.perf_counter()
        self._flush()
        closing = time.perf_counter()
        self.out.close()  # the GeoPackage's last transaction and spatial index
        self._write_s += time.perf_counter() - closing
        self._finish_s += time.perf_counter() - t
        return self.total_m2 if self.measure is not None else float("nan")

    def close(self) -> None:
        """Stop the worker and close the layer after a failure (the output set removes the
        file)."""
        self._error = self._error or _Stopped()
        self._stop()
        self.out.close()


class _Stopped(Exception):
    """Marks a product closed after a failure elsewhere: the worker drains without tracing."""


def _write_batch(
    fileio: RasterIO,
    batch: list[tuple[Polygon, int]],
    out: FeatureWriter,
    class_names: Sequence[str],
    area: GridAreas | None,
    options: PolygonOptions,
    tolerance_px: float,
    transform: Transform,
) -> float:
    """Fill holes, simplify, measure (vectorised over the batch, in pixel coordinates), move
    to the CRS (one affine call for the batch) and write; returns m2."""

    def measure(polys: list[Polygon]) -> list[np.ndarray]:
        flat = [r for p in polys for r in p]
        if area is not None:
            areas = area.ring_areas(flat, pixels=True)
        else:  # pixel space: no area on the ground, no area filters
            areas = np.full(len(flat), np.nan)
        out_, i = [], 0
        for p in polys:
            out_.append(areas[i : i + len(p)])
            i += len(p)
        return out_

    polys = [p for p, _ in batch]
    if options.fill_holes_m2 > 0:
        polys = [
            [p[0], *(r for r, a in zip(p[1:], ring_areas[1:], strict=True)
                     if a >= options.fill_holes_m2)]
            for p, ring_areas in zip(polys, measure(polys), strict=True)
        ]  # fmt: skip
    if tolerance_px > 0:
        polys = [fileio.simplify(p, tolerance_px) for p in polys]
    kept = []
    for poly, ring_areas, (_, cls) in zip(polys, measure(polys), batch, strict=True):
        a = float(ring_areas[0] - ring_areas[1:].sum()) if len(ring_areas) else 0.0
        if poly and not (np.isfinite(a) and (a <= 0 or a < options.min_area_m2)):
            kept.append((poly, cls, a))
    if not kept:
        return 0.0
    rings = [r for p, _, _ in kept for r in p]
    xy = np.concatenate(rings)
    x, y = transform.apply(xy[:, 0], xy[:, 1])
    moved = np.split(np.column_stack([x, y]), np.cumsum([len(r) for r in rings])[:-1])
    total, i = 0.0, 0
    for poly, cls, a in kept:
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        out.add(moved[i : i + len(poly)], **{"class": int(cls), "class_name": name,
                                            "area_m2": _num(a)})  # fmt: skip
        i += len(poly)
        total += a
    return total


def write_detections(
    fileio: RasterIO,
    path: Path,
    dets: Detections,
    class_names: Sequence[str],
    crs: Crs | None,
    transform: Transform,
    pixel_size_m: tuple[float, float] | None,
    area: EqualArea | None,
) -> int:
    """One box polygon per detection with score, class, length/width in m, centre, and how
    the box was drawn (``box_from``: ``hull`` where it was fitted to the bright hull under the
    detection, so its length measures the ship's; ``detector`` where it is the detector's own).

    Args:
        fileio: the IO backend that writes the GeoPackage.
        path: GeoPackage to create.
        dets: boxes in pixels of the grid that ``transform`` georeferences.
        class_names: names by class index.
        crs: CRS of ``transform`` (None: pixel space).
        pixel_size_m: ground pixel size, for sizes without a CRS-based measure.
        area: measures ground lengths (None without a CRS).

    Returns:
        Number of features written.
    """
    fields = [
        ("score", "real"), ("class", "int"), ("class_name", "str"), ("length_m", "real"),
        ("width_m", "real"), ("centre_x", "real"), ("centre_y", "real"), ("lon", "real"),
        ("lat", "real"), ("box_from", "str"),
    ]  # fmt: skip
    out = fileio.feature_writer(path, "detections", crs, fields)
    b = dets.boxes
    x0, y0 = transform.apply(b[:, 0], b[:, 1])
    x1, y1 = transform.apply(b[:, 2], b[:, 3])
    cx, cy = transform.apply((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    x0, y0, x1, y1, cx, cy = (np.asarray(v, dtype=float) for v in (x0, y0, x1, y1, cx, cy))
    nan = np.full(len(dets), np.nan)
    fitted = dets.is_fitted()
    lon, lat = nan, nan
    if area is not None and crs is not None and len(dets):
        side_x, side_y = area.box_sides_m(x0, y0, x1, y1)
        lon, lat = fileio.transform_xy(crs, fileio.parse_crs("EPSG:4326"), cx, cy)
    elif pixel_size_m is not None:
        side_x = (b[:, 2] - b[:, 0]) * pixel_size_m[0]
        side_y = (b[:, 3] - b[:, 1]) * pixel_size_m[1]
    else:  # pixel space: sizes on the ground are unknown
        side_x, side_y = nan, nan
    for i in range(len(dets)):
        ring = np.array([(x0[i], y0[i]), (x1[i], y0[i]), (x1[i], y1[i]), (x0[i], y1[i]),
                         (x0[i], y0[i])])  # fmt: skip
        c = int(dets.classes[i])
        out.add(
            [ring],
            score=float(dets.scores[i]),
            **{"class": c},
            class_name=class_names[c] if c < len(class_names) else str(c),
            length_m=_num(max(side_x[i], side_y[i])),
            width_m=_num(min(side_x[i], side_y[i])),
            centre_x=float(cx[i]),
            centre_y=float(cy[i]),
            lon=_num(lon[i]),
            lat=_num(lat[i]),
            box_from="hull" if fitted[i] else "detector",
        )
    out.close()
    return out.count


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)

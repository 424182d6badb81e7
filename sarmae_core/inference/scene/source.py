"""A SAR raster opened for windowed reading in the model's units, bands and pixel size.

Any raster GDAL reads works (GeoTIFF/COG, VRT, Sentinel-1 SAFE measurement TIFFs georeferenced
by GCPs). Reads go window by window; the whole raster is never loaded. Each read returns the
model's channels in the model's units and a validity mask (nodata, NaN, alpha/internal masks);
invalid pixels are never passed on as if they were data.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ...contract.metadata import ModelInfo
from ...errors import InputError, RasterError
from ...units import convert
from ..geo.geodesy import grids_overlap, pixel_size_m
from ..geo.georef import Crs, Transform
from ..io import raster_io
from ..io.raster_io import Raster, RasterIO
from ..notes import Notes, PrefixedNotes
from .sar_metadata import (
    band_polarisations,
    check_not_optical,
    decide_units,
    map_bands,
    units_from_metadata,
)

#: Sample read to guess units and to find out early that a raster holds no data: a 5 x 5 grid
#: of 64 px windows, cheap whatever the raster size.
_SAMPLE_GRID, _SAMPLE_SIZE = 5, 64


def open_dataset(raster: str | os.PathLike, fileio: RasterIO | None = None) -> Raster:
    """Open ``raster`` with the IO backend ``fileio`` (default: :func:`.raster_io.get`), turning
    every failure into a clear :class:`RasterError`."""
    fileio = fileio or raster_io.get()
    text = os.fspath(raster)
    virtual = text.startswith("/vsi") or "://" in text
    path = Path(text)
    if not virtual:
        if not path.exists():
            raise RasterError(f"input raster {path} does not exist; check the path")
        if path.is_file() and path.stat().st_size == 0:
            raise RasterError(f"input raster {path} is empty (0 bytes): it holds no raster")
    ds = fileio.open_raster(text)
    if ds.width == 0 or ds.height == 0 or ds.count == 0:
        ds.close()
        raise RasterError(f"{text} is a zero-size raster ({ds.width} x {ds.height} px, no data)")
    return ds


class SarSource:
    """Reads model-ready windows from a SAR raster.

    Args:
        raster: path of any raster GDAL reads.
        info: what the model expects (units, polarisations, resolution).
        units: the input's units (``db``, ``intensity``, ``amplitude``, ``complex``); None to
            take them from the file's metadata, else to guess (and say so).
        bands: one band name or 1-based index per model channel; None to map by polarisation.
        allow_optical: read images that look optical (8-bit RGB) anyway.
        resolution_tolerance: relative pixel-size difference to the model's resolution above
            which the raster is resampled on the fly.
        notes: collects every assumption and adjustment.
        fileio: the IO backend (None: :func:`.raster_io.get`'s choice).
        grid: ``(crs, transform, width, height)`` of another scene to read this one on (the
            before scene of a pair, on the after scene's read grid), warped on the fly.

    Attributes:
        crs, transform, width, height: the grid reads are made on (the raster's own grid, or
            its resampled or GCP-warped version).
        input_transform, input_width, input_height: the raster's own grid (or its GCP-warped
            version): outputs are written on it.
        fileio: the IO backend module in use.
        units: the input's units; ``channels``: how model channels are made from bands.
        nodata: nodata value for float outputs (the input's when it fits, else NaN).
    """

    def __init__(
        self,
        raster: str | os.PathLike,
        info: ModelInfo,
        *,
        units: str | None = None,
        bands: Sequence[str | int] | None = None,
        allow_optical: bool = False,
        resolution_tolerance: float = 0.25,
        notes: Notes | None = None,
        fileio: RasterIO | None = None,
        check_cancel: Callable[[], None] | None = None,
        grid: tuple[Crs, Transform, int, int] | None = None,
    ) -> None:
        self.notes = notes if notes is not None else Notes()
        self._grid = grid
        # the full scan of a huge, mostly empty raster can take minutes: a cancel must stop it
        self._check_cancel = check_cancel or (lambda: None)
        self.info = info
        self.path = Path(os.fspath(raster))
        self.fileio = raster_io.get(fileio)
        self._src = open_dataset(raster, self.fileio)
        self._ds = self._src
        self._vrts: list[Raster] = []  # outermost last
        try:
            self._setup(units, bands, allow_optical, resolution_tolerance)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _setup(
        self,
        units: str | None,
        bands: Sequence[str | int] | None,
        allow_optical: bool,
        tolerance: float,
    ) -> None:
        src = self._src
        check_not_optical(src, allow_optical)
        names = band_polarisations(src, self.path)
        self.channels = map_bands(self.info.polarisations, names, bands, self.notes)
        self._indexes = sorted({b for ch in self.channels for b in ch.bands})
        self.source_dtype = src.dtypes[self._indexes[0] - 1]

        self._choose_grid(tolerance)
        values, valid = self._sample()
        if not valid.any() and not self._any_valid():
            nod = self._src.nodata
            raise InputError(
                f"{self.path.name} has no valid pixels: every pixel is nodata"
                f"{f' ({nod:g})' if nod is not None else ''}, NaN or masked"
            )
        stated = units_from_metadata(src, self.path, self._indexes)
        self.units = decide_units(units, stated, values[:, valid], self.source_dtype, self.notes)
        if self.units == "complex" and dtype_kind(self.source_dtype) != "c":
            raise InputError(f"units='complex' but the raster holds {self.source_dtype} values")
        if self.units != "complex" and dtype_kind(self.source_dtype) == "c":
            self.notes.info("complex input: converted to intensity |s|^2 before the model")
            self.units = "complex"
        nodata = self._src.nodata
        self.nodata = (
            float(nodata)
            if nodata is not None and np.isfinite(nodata) and np.float32(nodata) == nodata
            else float("nan")
        )

    def _choose_grid(self, tolerance: float) -> None:
        """Pick the read grid: the raster's own, GCP-warped, and/or resampled to the model."""
        src = self._src
        nodata = src.nodata
        if nodata is None and dtype_kind(src.dtypes[0]) in "ui":
            nodata = 0  # Sentinel-1 GRD/SLC fill their borders with 0
        warp_nodata = (nodata, float("nan") if nodata is None else nodata)
        if src.crs is None and src.gcp_count and src.gcp_crs is not None:
            # Sentinel-1 SAFE measurement TIFFs carry GCPs, not a geotransform: warp on the fly
            # with GDAL's GCP fit, on GDAL's suggested grid (rasterio's WarpedVRT reads zeros
            # from GCP sources when given a target grid); resampling wraps it below.
            self._vrts.append(self.fileio.warp(src, src.gcp_crs, None, "bilinear", warp_nodata))
            self.notes.warn(
                f"{self.path.name} is georeferenced by {src.gcp_count} GCPs only; it is warped "
                f"to {src.gcp_crs.to_string()} on the fly"
            )
        base = self._vrts[-1] if self._vrts else src
        if self._grid is not None:
            self._warp_to_grid(base, warp_nodata)
            return
        crs, transform, width, height = base.crs, base.transform, base.width, base.height
        self.input_transform, self.input_width, self.input_height = transform, width, height
        self._base = base
        self.pixel_size_m = pixel_size_m(self.fileio, crs, transform, width, height)
        self.input_pixel_size_m = self.pixel_size_m
        res = self.info.resolution_m
        if crs is None:
            self.notes.warn(
                f"{self.path.name} has no CRS: running in pixel space; outputs have no "
                "georeference, areas and ship sizes in metres cannot be given, and the pixel "
                "size cannot be checked against the model's resolution"
            )
        elif (res or self.info.resolution_range_m) and self.pixel_size_m:
            px, py = self.pixel_size_m
            refused = resolution_refusal(px, py, self.info, tolerance)
            if refused:
                raise InputError(f"{self.path.name}: {refused}")
            target = model_pixel_size(px, py, self.info, tolerance)
            if target is not None:
                tx, ty = target
                new_w = max(1, round(width * px / tx))
                new_h = max(1, round(height * py / ty))
                # Averaging when shrinking keeps every input pixel's contribution (nearer to
                # multilooking than bilinear sampling); dB values are averaged as they are.
                resampling = "average" if new_w < width else "bilinear"
                transform = transform.then(Transform.scale(width / new_w, height / new_h))
                self.notes.warn(
                    f"pixel size {px:.3g} x {py:.3g} m is outside what the model was trained "
                    f"for ({trained_for(self.info)}, {tolerance:.0%} tolerance): resampled on "
                    f"the fly ({resampling}) to {new_w} x {new_h} px for the model; outputs "
                    "are resampled back to the input's grid"
                )
                self.pixel_size_m = (px * width / new_w, py * height / new_h)
                width, height = new_w, new_h
                self._vrts.append(
                    self.fileio.warp(base, crs, (transform, width, height), resampling, warp_nodata)
                )
        self._ds = self._vrts[-1] if self._vrts else src
        self.crs: Crs | None = crs
        self.transform, self.width, self.height = transform, width, height
        # Alpha bands and internal masks need GDAL's mask; plain nodata is a cheaper compare.
        self._gdal_mask = bool(self._vrts) or self._ds.has_mask(self._indexes)
        self._base_mask = self._base is not src or src.has_mask(self._indexes)

    def _warp_to_grid(self, base: Raster, warp_nodata: tuple[float | None, float]) -> None:
        """Read ``base`` on ``self._grid`` (another scene's): refuse it if they do not overlap."""
        crs, transform, width, height = self._grid  # type: ignore[misc]
        if base.crs is None:
            raise InputError(
                f"{self.path.name} has no CRS: it cannot be put on the other scene's grid; "
                "georeference it first"
            )
        if not grids_overlap(self.fileio, base.crs, base.transform, base.width, base.height,
                        crs, transform, width, height):  # fmt: skip
            raise InputError(
                f"{self.path.name} does not overlap the scene it is paired with: give a scene "
                "of the same area"
            )
        own = pixel_size_m(self.fileio, base.crs, base.transform, base.width, base.height)
        target = pixel_size_m(self.fileio, crs, transform, width, height)
        # average a finer scene down to the grid (as multilooking would), interpolate otherwise
        finer = own is not None and target is not None and own[0] < 0.8 * target[0]
        resampling = "average" if finer else "bilinear"
        self._vrts.append(self.fileio.warp(base, crs, (transform, width, height), resampling,
                                       warp_nodata))  # fmt: skip
        self._base = base
        self.input_transform, self.input_width, self.input_height = (
            base.transform, base.width, base.height,
        )  # fmt: skip
        self._ds = self._vrts[-1]
        self.crs, self.transform, self.width, self.height = crs, transform, width, height
        self.pixel_size_m = target
        self.input_pixel_size_m = own
        self._gdal_mask = True
        self._base_mask = base is not self._src or self._src.has_mask(self._indexes)

    @property
    def orbit_direction(self) -> str | None:
        """``ASCENDING`` / ``DESCENDING`` from the raster's metadata (GDAL's Sentinel-1 SAFE
        item ``ORBIT_DIRECTION``), or None when it does not say."""
        return self._src.tags(0).get(ORBIT_DIRECTION) or None

    @property
    def resampled(self) -> bool:
        """Whether the read grid differs from the input's (outputs are resampled back)."""
        return self._ds is not self._base

    @property
    def input_scale(self) -> tuple[float, float]:
        """Input pixels per read-grid pixel, (rows, cols)."""
        return self.input_height / self.height, self.input_width / self.width

    # ------------------------------------------------------------------ reading
    def read(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Model input of a window of the read grid.

        Returns:
            ``(data [C, height, width] float32 in the model's units, valid [height, width])``;
            ``data`` is undefined where ``valid`` is False.
        """
        raw = self._ds.read(self._indexes, row, col, height, width)  # [B, h, w]
        valid = self._valid(self._ds, raw, row, col, self._gdal_mask)
        pos = {b: i for i, b in enumerate(self._indexes)}
        dst = self.info.units
        out = np.empty((len(self.channels), height, width), dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            converted = {b: convert(_as_float(raw[pos[b]]), self.units, dst) for b in self._indexes}
            for i, ch in enumerate(self.channels):
                if len(ch.bands) == 1:
                    out[i] = converted[ch.bands[0]]
                else:  # a ratio channel such as VV-VH: a difference in dB, a ratio otherwise
                    a, b = (converted[k] for k in ch.bands)
                    out[i] = a - b if dst == "db" else a / b
        valid &= np.isfinite(out).all(axis=0)
        return out, valid

    def input_valid(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Validity of a window of the input's own grid (where outputs are written)."""
        raw = self._base.read(self._indexes, row, col, height, width)
        return self._valid(self._base, raw, row, col, self._base_mask)

    def _valid(
        self, ds: Raster, raw: np.ndarray, row: int, col: int, gdal_mask: bool
    ) -> np.ndarray:
        height, width = raw.shape[1:]
        if gdal_mask:
            valid = (ds.read_masks(self._indexes, row, col, height, width) > 0).all(axis=0)
        elif ds.nodata is not None:
            nod = ds.nodata
            valid = ~(np.isnan(raw) if math.isnan(nod) else raw == nod).any(axis=0)
        else:
            valid = np.ones(raw.shape[1:], dtype=bool)
        if raw.dtype.kind in "fc":
            valid &= np.isfinite(raw).all(axis=0)
        return valid

    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Raw values [B, N] and validity [N] of a few windows spread over the grid."""
        size_r, size_c = min(_SAMPLE_SIZE, self.height), min(_SAMPLE_SIZE, self.width)
        rows = np.linspace(0, self.height - size_r, _SAMPLE_GRID).astype(int)
        cols = np.linspace(0, self.width - size_c, _SAMPLE_GRID).astype(int)
        values, masks = [], []
        for r in np.unique(rows):
            for c in np.unique(cols):
                raw = self._ds.read(self._indexes, int(r), int(c), size_r, size_c)
                masks.append(self._valid(self._ds, raw, int(r), int(c), self._gdal_mask).ravel())
                values.append(raw.reshape(len(self._indexes), -1))
        return np.concatenate(values, axis=1), np.concatenate(masks)

    def _any_valid(self) -> bool:
        """Full scan, in strips, for a raster whose sample found nothing valid."""
        step = max(1, (1 << 24) // max(1, self.width * len(self._indexes)))
        for r in range(0, self.height, step):
            self._check_cancel()  # a strip reads in well under a second
            raw = self._ds.read(self._indexes, r, 0, min(step, self.height - r), self.width)
            if self._valid(self._ds, raw, r, 0, self._gdal_mask).any():
                return True
        return False

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        for vrt in reversed(self._vrts):
            vrt.close()
        self._src.close()

    def __enter__(self) -> SarSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def date_info(info: ModelInfo, date: str) -> ModelInfo:
    """The single-date view of a two-date model: the channels of ``date`` (``before`` or
    ``after``), as a scene of that date is read for it."""
    keep = [i for i, d in enumerate(info.dates) if d == date]
    norm = {k: ([v[i] for i in keep] if isinstance(v, list) else v)
            for k, v in info.normalization.items()}  # fmt: skip
    return dataclasses.replace(
        info, polarisations=[info.polarisations[i] for i in keep], normalization=norm, dates=[]
    )


class PairSource:
    """A two-date source: the after scene, and the before scene read on its grid.

    The after scene decides everything a single scene would (read grid, resampling to the
    model, output grid, units note, validity); the before scene is warped onto the after's
    read grid, whatever its own grid or CRS (a pair that does not overlap is refused). Reads
    give the model's channels in its order of dates, valid where both dates hold data.

    Args:
        after, before: the two scenes.
        info: a two-date model (``info.dates``).
        **options: as :class:`SarSource` (units and bands apply to both scenes).
    """

    def __init__(
        self, after: str | os.PathLike, before: str | os.PathLike, info: ModelInfo, **options
    ) -> None:
        self.info = info
        notes = options.pop("notes", None)
        notes = notes if notes is not None else Notes()
        self.after = SarSource(after, date_info(info, "after"), notes=notes, **options)
        try:
            a = self.after
            grid = (a.crs, a.transform, a.width, a.height) if a.crs is not None else None
            if grid is None:
                raise InputError(
                    f"{a.path.name} has no CRS: a before scene cannot be matched to it; "
                    "georeference both scenes"
                )
            said = PrefixedNotes(notes, "before scene: ")
            try:
                self.before = SarSource(before, date_info(info, "before"), grid=grid,
                                        notes=said, **options)  # fmt: skip
            except InputError as exc:  # say which of the two scenes it is about
                name = Path(before).name
                text = str(exc) if name in str(exc) else f"before scene {name}: {exc}"
                raise InputError(text) from exc
        except BaseException:
            self.after.close()
            raise
        _check_pair(self.before, self.after, notes)
        # model channel k comes from the date's own channel j
        seen = {"before": 0, "after": 0}
        self._order = []
        for d in info.dates:
            self._order.append((d, seen[d]))
            seen[d] += 1

    def __getattr__(self, name: str):
        # grid, units, nodata, input grid and its validity: the after scene's
        if name in ("after", "before"):  # not set yet: a failed __init__
            raise AttributeError(name)
        return getattr(self.after, name)

    def read(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Model input of a window of the after scene's read grid: both dates' channels."""
        a, va = self.after.read(row, col, height, width)
        b, vb = self.before.read(row, col, height, width)
        dates = {"after": a, "before": b}
        out = np.stack([dates[d][j] for d, j in self._order])
        return out, va & vb

    def close(self) -> None:
        self.before.close()
        self.after.close()

    def __enter__(self) -> PairSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Dataset metadata items GDAL's Sentinel-1 SAFE driver writes (kept by ``gdal_translate``).
ORBIT_DIRECTION, START_TIME = "ORBIT_DIRECTION", "ACQUISITION_START_TIME"


def _check_pair(before: SarSource, after: SarSource, notes: Notes) -> None:
    """Say when a pair's metadata shows what makes change detection unreliable: different
    orbit directions (other incidence angles and shadows change backscatter without any flood),
    or a before scene acquired after the after scene."""
    b, a = before._src.tags(0), after._src.tags(0)
    pb, pa = b.get(ORBIT_DIRECTION, "").upper(), a.get(ORBIT_DIRECTION, "").upper()
    if pb and pa and pb != pa:
        notes.warn(
            f"the scenes were acquired on different orbit directions (before {pb}, after {pa}): "
            "incidence angles and radar shadows differ, which changes backscatter without any "
            "flood; a before scene from the same orbit maps change more reliably"
        )
    tb, ta = b.get(START_TIME, ""), a.get(START_TIME, "")
    if tb and ta and tb[:19] > ta[:19]:  # ISO 8601 times compare as text
        notes.warn(
            f"the before scene ({tb[:10]}) was acquired after the after scene ({ta[:10]}): "
            "were they swapped?"
        )


def dtype_kind(dtype: str) -> str:
    """numpy's kind letter of a raster data type (``complex_int16`` has no numpy twin)."""
    return "c" if dtype.startswith("complex") else np.dtype(dtype).kind


def _as_float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype.kind in "fc" and x.itemsize >= 4 else x.astype(np.float32)


def model_pixel_size(
    px: float, py: float, info: ModelInfo, tolerance: float = 0.25
) -> tuple[float, float] | None:
    """Pixel size (x, y) in metres to run ``info``'s model at for input pixels of ``px`` x
    ``py`` m, or None to read the input on its own grid.

    A model trained across a range of pixel sizes (``resolution_range_m``, e.g. 10-20 m) reads
    any input inside it, widened by ``tolerance``, as it is: averaging a 10 m scene to 20 m
    would throw away the detail the model was trained to use. Outside it, the input goes to the
    nearer end of the range. A model that knows one ``resolution_m`` only gets its own.
    """
    rng = info.resolution_range_m
    if rng:
        lo, hi = rng[0] * (1 - tolerance), rng[1] * (1 + tolerance)
        if all(lo <= p <= hi for p in (px, py)):
            return None
        mean = math.sqrt(px * py)  # keep the input's pixel aspect
        goal = min(max(mean, rng[0]), rng[1])
        return px * goal / mean, py * goal / mean
    res = info.resolution_m
    if res is None or max(abs(px / res - 1), abs(py / res - 1)) <= tolerance:
        return None
    return res, res


#: How much coarser than the coarsest pixels of a detection model's range an input may be
#: before it is refused: ships shrink with the pixels, and resampling a coarse scene up to the
#: model's range does not bring back the pixels a hull lacks.
COARSER_REFUSED = 1.0


def resolution_refusal(
    px: float, py: float, info: ModelInfo, tolerance: float = 0.25
) -> str | None:
    """Why a detection model must not run on pixels of ``px`` x ``py`` m, or None.

    Only detection models with a ``resolution_range_m`` refuse, and only coarser pixels than
    the range (widened by ``tolerance``): finer pixels are averaged into the range, and a
    segmentation model's water stays water when resampled. A larger ``tolerance`` runs the
    model anyway, on the scene's own pixels.
    """
    rng = info.resolution_range_m
    if info.task != "detection" or not rng:
        return None
    coarsest = rng[1] * (1 + tolerance) * COARSER_REFUSED
    mean = math.sqrt(px * py)
    if mean <= coarsest:
        return None
    need = mean / rng[1] - 1
    return (
        f"this model is for {trained_for(info)}; the scene has {px:.3g} x {py:.3g} m pixels, "
        f"on which ships are {mean / rng[1]:.1f} times fewer pixels long than any it was "
        "trained on (resampling cannot add the missing detail). Use the CFAR detector "
        "(`--detector cfar`, model='cfar', or Detector: CA-CFAR in QGIS) or a model trained "
        f"for this pixel size; resolution_tolerance={need:.3g} runs it anyway"
    )


def scene_pixel_size_m(raster: str | os.PathLike, fileio: RasterIO | None = None) -> tuple | None:
    """Ground pixel size (x, y) in metres of a raster file, None without a CRS (metadata
    only: for checks made before a run, such as the QGIS plugin's)."""
    fileio = raster_io.get(fileio)
    ds = open_dataset(raster, fileio)
    try:
        if ds.crs is None:
            return None
        return pixel_size_m(fileio, ds.crs, ds.transform, ds.width, ds.height)
    finally:
        ds.close()


def trained_for(info: ModelInfo) -> str:
    """The pixel sizes a model was trained for, in words (messages, the dock, model cards)."""
    rng = info.resolution_range_m
    if rng:
        return f"{rng[0]:g}-{rng[1]:g} m pixels"
    if info.resolution_m:
        return f"{info.resolution_m:g} m pixels"
    return "any pixel size"

"""Which library reads and writes the files: GDAL's Python bindings, else rasterio.

The engine reaches files only through one of two thin backends with the same operations, the
:class:`RasterIO` interface:

- :mod:`~sarmae_core.inference.io.gdal_io`: ``osgeo.gdal``/``ogr``/``osr``, what QGIS ships (the
  plugin's only choice: it may import numpy, onnxruntime and GDAL, nothing else);
- :mod:`~sarmae_core.inference.io.rasterio_io`: rasterio, whose wheels bundle GDAL, for a plain
  ``pip install`` where GDAL's bindings (which need the system's GDAL) are missing.

``auto`` takes GDAL's bindings when they import, else rasterio. ``SARMAE_IO=gdal|rasterio``
in the environment, or ``predict(..., io_backend=...)``, forces one. :func:`get` returns the
backend object (``gdal_io.BACKEND`` or ``rasterio_io.BACKEND``); the engine's functions take it
as their ``fileio`` argument. Value objects (:class:`~.georef.Crs`) do not carry it.

Polygons are lists of closed rings, each an ``[n, 2]`` float
array, the exterior first.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...errors import CancelledError, ConfigError
from ..geo.georef import Crs, Transform

#: Environment variable that forces a backend.
ENV = "SARMAE_IO"
BACKENDS = ("gdal", "rasterio")
#: A polygon: closed rings ([n, 2] arrays), exterior first.
Polygon = list[np.ndarray]
#: A target grid: transform, width, height.
Grid = tuple[Transform, int, int]
#: Nodata of a warp: the source's (None: none) and the output's.
Nodata = tuple[float | None, float]


class Raster(Protocol):
    """An open raster (or a warped view of one), as both backends present it.

    ``dtypes`` use rasterio's names (``uint16``, ``float32``, ``complex_int16``);
    ``colorinterp`` lower-case GDAL names (``gray``, ``red``, ``undefined``); bands are 1-based.
    """

    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    crs: Crs | None
    transform: Transform
    gcp_count: int
    gcp_crs: Crs | None
    descriptions: tuple[str, ...]
    units: tuple[str, ...]
    colorinterp: tuple[str, ...]

    def tags(self, band: int) -> dict[str, str]:
        """Metadata of 1-based ``band``; 0: of the dataset (e.g. GDAL's Sentinel-1 SAFE items
        ``ORBIT_DIRECTION``, ``ACQUISITION_START_TIME``)."""
        ...

    def has_mask(self, bands: Sequence[int]) -> bool:
        """Whether validity needs GDAL's mask (alpha band, internal mask, warped edges)."""
        ...

    def read(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        """``[len(bands), height, width]`` in the raster's data type."""
        ...

    def read_masks(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        """GDAL's masks of ``bands`` (0 invalid, 255 valid), ``[len(bands), height, width]``."""
        ...

    def read_resampled(self, band: int, height: int, width: int, nearest: bool) -> Any:
        """The whole band at ``height`` x ``width`` (overviews used), a masked array."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RasterSpec:
    """A GeoTIFF to create: shape, type, georeference, GDAL creation options and metadata."""

    width: int
    height: int
    count: int
    dtype: str
    crs: Crs | None
    transform: Transform
    nodata: float | None
    options: Mapping[str, str]
    descriptions: Sequence[str] = ()
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class GeoTiffFile(Protocol):
    """A GeoTIFF being written by a backend, in row chunks."""

    def write(self, row: int, values: np.ndarray) -> None:
        """``values`` [bands, rows, width] from ``row`` down."""
        ...

    def close(self) -> None: ...


class FeatureWriter(Protocol):
    """One multipolygon layer of a new GeoPackage (fields: ``(name, int|real|str)``)."""

    count: int

    def add(self, polygon: Polygon | None, **values: object) -> None:
        """One feature; ``polygon`` None writes a null geometry."""
        ...

    def close(self) -> None: ...


class RasterIO(Protocol):
    """What the engine asks of the library that reads and writes its files; implemented by
    :mod:`.gdal_io` and :mod:`.rasterio_io` (each as a :class:`ModuleBackend`)."""

    name: str

    def environment(self, cache_mb: int) -> AbstractContextManager[None]:
        """A context with a block cache of at most ``cache_mb`` and deflate overviews."""
        ...

    def open_raster(self, path: str) -> Raster:
        """Open a raster (raises :class:`~sarmae_core.errors.RasterError`)."""
        ...

    def warp(
        self, raster: Raster, crs: Crs, grid: Grid | None, resampling: str, nodata: Nodata
    ) -> Raster:
        """A virtual warped or resampled view of ``raster`` on ``grid`` (None: GDAL's
        suggested grid)."""
        ...

    def parse_crs(self, text: str) -> Crs:
        """A CRS from ``EPSG:n``, WKT or a PROJ string (raises InputError)."""
        ...

    def transform_xy(self, src: Crs, dst: Crs, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates ``x``, ``y`` of ``src`` in ``dst``."""
        ...

    def create_geotiff(self, path: Path, spec: RasterSpec) -> GeoTiffFile:
        """A new GeoTIFF as ``spec`` says."""
        ...

    def build_overviews(
        self, path: Path, factors: list[int], resampling: str, check_cancel: Callable[[], None]
    ) -> None:
        """Overviews in the file, stopped within a second by a cancel."""
        ...

    def to_cog(
        self, src: Path, dst: Path, options: Mapping[str, str], check_cancel: Callable[[], None]
    ) -> None:
        """A Cloud-Optimized GeoTIFF copy of ``src``."""
        ...

    def trace(
        self, classes: np.ndarray, row0: int, check_cancel: Callable[[], None] | None = None
    ) -> list[tuple[Polygon, int]]:
        """The 4-connected regions of equal non-zero value of an in-memory uint8 array as
        ``(polygon, value)``, in pixel coordinates (x the column, y ``row0`` + the row);
        stopped within a line by ``check_cancel`` where the backend can (GDAL's bindings)."""
        ...

    def union(self, pieces: Sequence[Polygon]) -> list[Polygon]:
        """The union of polygons (pieces of one region joined)."""
        ...

    def sieve(self, classes: np.ndarray, pixels: int) -> np.ndarray:
        """4-connected regions below ``pixels`` merged into a neighbour."""
        ...

    def feature_writer(
        self, path: Path, layer: str, crs: Crs | None, fields: Sequence[tuple[str, str]]
    ) -> FeatureWriter:
        """One multipolygon layer of a new GeoPackage."""
        ...

    def read_polygons(self, path: Path) -> tuple[list[Polygon], Crs | None]:
        """Every polygon of every layer of a vector file, and their CRS."""
        ...

    def simplify(self, polygon: Polygon, tolerance: float) -> Polygon:
        """Douglas-Peucker on each ring, in the polygon's units."""
        ...


#: The operations of :class:`RasterIO` besides ``name``.
OPERATIONS = (
    "environment", "open_raster", "warp", "parse_crs", "transform_xy", "create_geotiff",
    "build_overviews", "to_cog", "trace", "union", "sieve", "feature_writer", "read_polygons",
    "simplify",
)  # fmt: skip


class ModuleBackend:
    """A :class:`RasterIO` made of a backend module's functions of the same names (and its
    writer classes for ``create_geotiff`` and ``feature_writer``): each of ``gdal_io`` and
    ``rasterio_io`` is one implementation of the interface, exposed as one object."""

    def __init__(self, module: Any, **classes: Any) -> None:
        self.name: str = module.NAME
        for op in OPERATIONS:
            setattr(self, op, classes[op] if op in classes else getattr(module, op))

    def __repr__(self) -> str:
        return f"<RasterIO {self.name}>"


_loaded: dict[str, RasterIO] = {}


def get(name: str | RasterIO | None = None) -> RasterIO:
    """The IO backend ``name`` (``gdal``, ``rasterio``, ``auto``; None: ``$SARMAE_IO`` or auto);
    a backend object is returned as it is.

    Raises:
        ConfigError: an unknown name, or a backend whose library is not installed.
    """
    if name is not None and not isinstance(name, str):
        return name
    choice = (name or os.environ.get(ENV) or "auto").strip().lower()
    if choice == "auto":
        for candidate in BACKENDS:
            try:
                return get(candidate)
            except ConfigError:
                continue
        raise ConfigError(
            "reading rasters needs GDAL's Python bindings (osgeo, shipped by QGIS) or "
            "rasterio; install one (pip install rasterio)"
        )
    if choice not in BACKENDS:
        where = f" (from ${ENV})" if name is None else ""
        raise ConfigError(f"unknown IO backend {choice!r}{where}; use auto, gdal or rasterio")
    if choice not in _loaded:
        try:
            _loaded[choice] = importlib.import_module(f"{__package__}.{choice}_io").BACKEND
        except ImportError as exc:
            what = "GDAL's Python bindings (osgeo)" if choice == "gdal" else "rasterio"
            raise ConfigError(f"the {choice} IO backend needs {what}: {exc}") from exc
    return _loaded[choice]


@contextmanager
def stoppable(
    check_cancel: Callable[[], None], gdal_error: type[Exception]
) -> Iterator[Callable[[float, Any, Any], int]]:
    """A GDAL progress callback that stops the step (returns 0) when ``check_cancel`` raises.

    An exception cannot cross GDAL's C code, so the CancelledError is kept and re-raised once
    GDAL has returned; the error GDAL raises for a step its callback stopped (``gdal_error``:
    RuntimeError from osgeo, RasterioIOError from rasterio) is ours to report as the cancel.
    GDAL calls it often (per block or line), so a cancel is seen at once.
    """
    stopped: list[CancelledError] = []

    def callback(_done: float, _msg: Any, _data: Any) -> int:
        try:
            check_cancel()
        except CancelledError as exc:
            stopped.append(exc)
            return 0
        return 1

    try:
        yield callback
    except gdal_error:
        if not stopped:
            raise
    if stopped:
        raise stopped[0]


def read_error(path: str, exc: BaseException, row: int, col: int, height: int, width: int):
    """The :class:`~sarmae_core.errors.RasterError` of a failed read: the file and the block,
    and the likely causes, in the same words whichever backend read it."""
    from ...errors import RasterError

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return RasterError(
        f"{path}: cannot read the block of rows {row}-{row + height - 1}, columns "
        f"{col}-{col + width - 1} ({first}); the file may be truncated or damaged, or a VRT "
        "whose source files are missing: check it with gdalinfo -checksum"
    )


def overview_factors(width: int, height: int, block: int) -> list[int]:
    """Overview levels 2, 4, 8, ... down to about half a block on the longer side."""
    factors, f = [], 2
    while max(width, height) / f >= block / 2:
        factors.append(f)
        f *= 2
    return factors

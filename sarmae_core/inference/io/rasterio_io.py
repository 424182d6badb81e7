"""The IO backend on rasterio (whose wheels bundle GDAL), for when GDAL's bindings are missing.

Thin calls only, the same functions as :mod:`~sarmae_core.inference.io.gdal_io` (see
:mod:`~sarmae_core.inference.io.raster_io`). rasterio has no vector API, so vector files are
written and read with pyogrio (OGR, GeoPackage 1.2 as the GDAL backend writes it) and polygons
simplified with shapely (GEOS, topology-preserving, as OGR's ``SimplifyPreserveTopology`` on the
GDAL path); polygons are traced by the GDAL inside rasterio (:func:`trace`) and joined by
shapely (:func:`union`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import rasterio.shutil
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ...errors import InputError, RasterError
from ..geo.geometry import Polygon, from_wkb, geojson_polygons, largest_polygon, to_wkb
from ..geo.georef import Crs, Transform
from .raster_io import Grid, ModuleBackend, Nodata, RasterIO, RasterSpec, read_error, stoppable

NAME = "rasterio"
#: Features per pyogrio write (a GeoPackage transaction each).
_BATCH = 2000


@contextmanager
def environment(cache_mb: int) -> Iterator[None]:
    """GDAL's block cache at most ``cache_mb`` and deflate overviews, for this run only."""
    with rasterio.Env(GDAL_CACHEMAX=cache_mb, COMPRESS_OVERVIEW="DEFLATE"):
        yield


# ---------------------------------------------------------------------- CRS
def parse_crs(text: str) -> Crs:
    """A CRS from ``EPSG:n``, WKT or a PROJ string.

    Raises:
        InputError: text PROJ does not understand as a CRS.
    """
    try:
        return _wrap(CRS.from_user_input(text))
    except CRSError as exc:
        raise InputError(f"unknown CRS {text!r} ({exc})") from exc


def _wrap(crs: CRS | None) -> Crs | None:
    if crs is None:
        return None
    geographic = bool(crs.is_geographic)
    return Crs(
        wkt=crs.to_wkt(),
        epsg=crs.to_epsg(),
        is_geographic=geographic,
        metres_per_unit=1.0 if geographic else float(crs.linear_units_factor[1]),
        native=crs,
    )


def transform_xy(src: Crs, dst: Crs, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0:
        return x, y
    px, py = rasterio.warp.transform(src.native, dst.native, x.ravel(), y.ravel())
    return np.asarray(px).reshape(x.shape), np.asarray(py).reshape(y.shape)


# ---------------------------------------------------------------------- rasters
class RioRaster:
    """A raster opened with rasterio (see :class:`.raster_io.Raster`)."""

    def __init__(self, ds: Any, path: str) -> None:
        self._ds = ds
        self.path = path
        self.width, self.height, self.count = ds.width, ds.height, ds.count
        self.dtypes = tuple(ds.dtypes)
        self.nodata = ds.nodata
        self.crs = _wrap(ds.crs)
        self.transform = Transform.of(ds.transform)
        gcps, gcp_crs = ds.gcps
        self.gcp_count = len(gcps)
        self.gcp_crs = _wrap(gcp_crs) if gcps else None
        self.descriptions = tuple(d or "" for d in ds.descriptions)
        self.units = tuple(u or "" for u in ds.units)
        self.colorinterp = tuple(c.name for c in ds.colorinterp)

    def tags(self, band: int) -> dict[str, str]:
        return dict(self._ds.tags(band))

    def has_mask(self, bands: Sequence[int]) -> bool:
        flags = [self._ds.mask_flag_enums[b - 1] for b in bands]
        return any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)

    def read(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        try:
            return self._ds.read(list(bands), window=Window(col, row, width, height))
        except RasterioError as exc:
            raise read_error(self.path, exc, row, col, height, width) from exc

    def read_masks(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        try:
            return self._ds.read_masks(list(bands), window=Window(col, row, width, height))
        except RasterioError as exc:
            raise read_error(self.path, exc, row, col, height, width) from exc

    def read_resampled(self, band: int, height: int, width: int, nearest: bool) -> Any:
        resampling = Resampling.nearest if nearest else Resampling.average
        try:
            return self._ds.read(
                band, out_shape=(height, width), resampling=resampling, masked=True
            )
        except RasterioError as exc:
            raise read_error(self.path, exc, 0, 0, self.height, self.width) from exc

    def close(self) -> None:
        self._ds.close()


def open_raster(path: str) -> RioRaster:
    """Open ``path`` for reading.

    Raises:
        RasterError: not a raster GDAL can read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the engine says it
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterError(f"{path} is not a raster GDAL can read ({exc})") from exc
    return RioRaster(ds, path)


def warp(
    raster: RioRaster, crs: Crs, grid: Grid | None, resampling: str, nodata: Nodata
) -> RioRaster:
    """A virtual warp of ``raster`` to ``crs`` on ``grid`` (None: GDAL's suggested one)."""
    target = {}
    if grid is not None:
        target = dict(transform=Affine(*grid[0]), width=grid[1], height=grid[2])
    vrt = WarpedVRT(raster._ds, crs=crs.native, resampling=Resampling[resampling],
                    src_nodata=nodata[0], nodata=nodata[1], **target)  # fmt: skip
    return RioRaster(vrt, raster.path)


class RioGeoTiff:
    """A GeoTIFF created as ``spec`` says, written in row chunks."""

    def __init__(self, path: Path, spec: RasterSpec) -> None:
        with warnings.catch_warnings():  # pixel-space outputs: the engine says it
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self._ds = rasterio.open(
                path, "w", driver="GTiff", width=spec.width, height=spec.height,
                count=spec.count, dtype=spec.dtype, crs=spec.crs.native if spec.crs else None,
                transform=Affine(*spec.transform), nodata=spec.nodata,
                **{k.lower(): v for k, v in spec.options.items()},
            )  # fmt: skip
        for i, text in enumerate(spec.descriptions, start=1):
            self._ds.set_band_description(i, text)
        if spec.colormap:
            self._ds.write_colormap(1, dict(spec.colormap))
        if spec.tags:
            self._ds.update_tags(**spec.tags)

    def write(self, row: int, values: np.ndarray) -> None:
        self._ds.write(values, window=Window(0, row, values.shape[-1], values.shape[-2]))

    def close(self) -> None:
        if not self._ds.closed:
            self._ds.close()


def build_overviews(
    path: Path, factors: list[int], resampling: str, check_cancel: Callable[[], None]
) -> None:
    lib = _gdal_c()
    if lib is None:  # no GDAL library to call: one uninterruptible step, checked around it
        check_cancel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path, "r+")
        with ds:
            ds.build_overviews(factors, Resampling[resampling])
        check_cancel()
    else:
        # rasterio's build_overviews takes no progress callback, so that seconds-long step is
        # run through rasterio's own GDAL library with one (the same call rasterio makes)
        levels = (ctypes.c_int * len(factors))(*factors)
        with _stoppable(lib, check_cancel) as progress:
            ds = _c_open(lib, path, update=True)
            try:
                err = lib.GDALBuildOverviews(ds, resampling.upper().encode(), len(factors),
                                             levels, 0, None, progress, None)  # fmt: skip
            finally:
                lib.GDALClose(ds)
            _c_check(lib, err != 0, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(path, "r+")
    with ds:
        ds.update_tags(ns="rio_overview", resampling=resampling)


def to_cog(
    src: Path, dst: Path, options: Mapping[str, str], check_cancel: Callable[[], None]
) -> None:
    lib = _gdal_c()
    if lib is None:
        check_cancel()
        rasterio.shutil.copy(src, dst, driver="COG", **{k.lower(): v for k, v in options.items()})
        check_cancel()
        return
    # rasterio.shutil.copy has no progress callback either: GDALCreateCopy, as it calls it
    items = [f"{k}={v}".encode() for k, v in options.items()]
    c_options = (ctypes.c_char_p * (len(items) + 1))(*items, None)
    with _stoppable(lib, check_cancel) as progress:
        source = _c_open(lib, src, update=False)
        try:
            out = lib.GDALCreateCopy(lib.GDALGetDriverByName(b"COG"), os.fsencode(dst), source,
                                     0, c_options, progress, None)  # fmt: skip
            if out:
                lib.GDALClose(out)
        finally:
            lib.GDALClose(source)
        _c_check(lib, not out, dst)


_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)
_LIB: list[Any] = []


def _gdal_c() -> Any:
    """The GDAL library rasterio itself runs on (its wheel bundles one), through ctypes; None
    when it cannot be found (a rasterio built on a system GDAL under another name)."""
    if not _LIB:
        lib = None
        folder = Path(rasterio.__file__).parent.parent / "rasterio.libs"
        names = sorted(folder.glob("libgdal*.so*")) or sorted(folder.glob("libgdal*.dylib"))
        found = str(names[0]) if names else ctypes.util.find_library("gdal")
        if found:
            try:
                lib = ctypes.CDLL(found)  # the copy already loaded: dlopen hands it back
                lib.GDALOpen.restype = lib.GDALGetDriverByName.restype = ctypes.c_void_p
                lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
                lib.GDALGetDriverByName.argtypes = [ctypes.c_char_p]
                lib.GDALClose.argtypes = [ctypes.c_void_p]
                lib.GDALBuildOverviews.argtypes = [
                    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                    ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_void_p, _PROGRESS,
                    ctypes.c_void_p,
                ]  # fmt: skip
                lib.GDALCreateCopy.restype = ctypes.c_void_p
                lib.GDALCreateCopy.argtypes = [
                    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                    ctypes.POINTER(ctypes.c_char_p), _PROGRESS, ctypes.c_void_p,
                ]  # fmt: skip
                lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
            except (OSError, AttributeError):
                lib = None
        _LIB.append(lib)
    return _LIB[0]


def _c_open(lib: Any, path: Path, update: bool) -> Any:
    ds = lib.GDALOpen(os.fsencode(path), 1 if update else 0)
    _c_check(lib, not ds, path)
    return ds


def _c_check(lib: Any, failed: bool, path: Path) -> None:
    if failed:
        message = (lib.CPLGetLastErrorMsg() or b"").decode(errors="replace")
        raise RasterioIOError(f"{path}: {message or 'GDAL failed'}")


@contextmanager
def _stoppable(lib: Any, check_cancel: Callable[[], None]) -> Iterator[Any]:
    """:func:`raster_io.stoppable` as a C progress function of the GDAL inside rasterio (a
    stopped step reaches us as a RasterioIOError from :func:`_c_check`)."""
    with stoppable(check_cancel, RasterioIOError) as callback:
        yield _PROGRESS(callback)  # kept referenced while GDAL may call it


# ---------------------------------------------------------------------- vectors
def trace(
    classes: np.ndarray, row0: int, check_cancel: Callable[[], None] | None = None
) -> list[tuple[Polygon, int]]:
    """Polygons of the 4-connected regions of equal non-zero value of ``classes`` (uint8, in
    memory) and their values, in pixel coordinates: x the column, y ``row0`` + the row
    (``GDALPolygonize`` through ``rasterio.features.shapes``; zero is not traced). It cannot be
    stopped midway: ``check_cancel`` is unused, rasterio's shapes takes no callback."""
    shapes = rasterio.features.shapes(
        classes, mask=classes != 0, connectivity=4, transform=Affine(1, 0, 0, 0, 1, row0)
    )
    return [(geojson_polygons(geometry)[0], int(value)) for geometry, value in shapes]


def union(pieces: Sequence[Polygon]) -> list[Polygon]:
    """The union of polygons (GEOS through shapely), as the GDAL backend does with OGR."""
    import shapely

    out = shapely.union_all(shapely.from_wkb([to_wkb(p, multi=False) for p in pieces]))
    return [] if out.is_empty else from_wkb(shapely.to_wkb(out))


class PyogrioFeatureWriter:
    """One multipolygon layer of a new GeoPackage, written with pyogrio in batches (see
    :class:`.raster_io.FeatureWriter`)."""

    def __init__(
        self, path: Path, layer: str, crs: Crs | None, fields: Sequence[tuple[str, str]]
    ) -> None:
        self.count = 0
        self.path, self.layer = Path(path), layer
        self._crs = crs.wkt if crs is not None else None
        self._fields = list(fields)
        self._rows: list[tuple[bytes | None, dict[str, object]]] = []
        self._written = False

    def add(self, polygon: Polygon | None, **values: object) -> None:
        """One feature; ``polygon`` None writes a null geometry (a catalogue row of an
        unreadable scene), a missing or None value a null field."""
        self._rows.append((None if polygon is None else to_wkb(polygon), values))
        self.count += 1
        if len(self._rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._rows or not self._written:  # the layer exists even with no feature
            from pyogrio.raw import write

            data, masks = [], []
            for name, kind in self._fields:
                values = [v.get(name) for _, v in self._rows]
                empty = {"int": 0, "real": 0.0, "str": ""}[kind]
                dtype = {"int": np.int64, "real": np.float64, "str": object}[kind]
                data.append(np.array([empty if x is None else x for x in values], dtype=dtype))
                masks.append(np.array([x is None for x in values], dtype=bool))
            geometry = np.array([g for g, _ in self._rows], dtype=object)
            write(
                str(self.path), geometry, data, [n for n, _ in self._fields], field_mask=masks,
                layer=self.layer, driver="GPKG", geometry_type="MultiPolygon", crs=self._crs,
                append=self._written, dataset_options={"VERSION": "1.2"},
            )  # fmt: skip
            self._written = True
        self._rows.clear()

    def close(self) -> None:
        if self.path is not None:
            self._flush()
            self.path = None  # type: ignore[assignment]


def read_polygons(path: Path) -> tuple[list[Polygon], Crs | None]:
    """Polygons of every layer of a vector file OGR reads (GeoPackage, GeoJSON, shapefile...)
    and their CRS, with pyogrio.

    Raises:
        RasterError: a file OGR cannot read.
    """
    import pyogrio
    from pyogrio.raw import read

    polygons: list[Polygon] = []
    wkt = None
    try:
        for name, _kind in pyogrio.list_layers(str(path)):
            meta, _fids, geometry, _fields = read(str(path), layer=str(name), read_geometry=True)
            wkt = wkt or meta.get("crs")
            for wkb in geometry:
                if wkb is not None:
                    polygons += from_wkb(bytes(wkb))
    except Exception as exc:  # pyogrio's DataSourceError and friends
        raise RasterError(f"{path}: cannot read it as a vector file ({exc})") from exc
    return polygons, parse_crs(wkt) if wkt else None


def sieve(classes: np.ndarray, pixels: int) -> np.ndarray:
    """``classes`` (uint8) with 4-connected regions of fewer than ``pixels`` pixels merged into
    their largest neighbour (``GDALSieveFilter`` through rasterio)."""
    return rasterio.features.sieve(classes, int(pixels), connectivity=4)


def simplify(polygon: Polygon, tolerance: float) -> Polygon:
    """Topology-preserving Douglas-Peucker (GEOS, through shapely), as the GDAL backend does
    with OGR; of a polygon that splits, the largest part is kept."""
    import shapely

    shape = shapely.from_wkb(to_wkb(polygon, multi=False))
    out = shapely.simplify(shape, tolerance, preserve_topology=True)
    return largest_polygon(None if out.is_empty else shapely.to_wkb(out))


#: This backend, as :func:`.raster_io.get` hands it out.
BACKEND: RasterIO = ModuleBackend(
    sys.modules[__name__], create_geotiff=RioGeoTiff, feature_writer=PyogrioFeatureWriter
)

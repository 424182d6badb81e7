"""The IO backend on GDAL's own Python bindings (``osgeo``): what QGIS ships.

Thin calls only; what to read, write and compute is decided by the engine (see
:mod:`~sarmae_core.inference.io.raster_io` for the functions every backend provides).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import gdal, ogr, osr

from ...errors import InputError, RasterError
from ..geo.geometry import Polygon, from_wkb, largest_polygon, to_wkb
from ..geo.georef import Crs, Transform
from .raster_io import Grid, ModuleBackend, Nodata, RasterIO, RasterSpec, read_error, stoppable

gdal.UseExceptions()
ogr.UseExceptions()

NAME = "gdal"
#: GDAL data type names -> rasterio's names, which the engine uses.
_DTYPES = {
    "Byte": "uint8", "Int8": "int8", "UInt16": "uint16", "Int16": "int16", "UInt32": "uint32",
    "Int32": "int32", "UInt64": "uint64", "Int64": "int64", "Float32": "float32",
    "Float64": "float64", "CInt16": "complex_int16", "CInt32": "complex_int32",
    "CFloat32": "complex64", "CFloat64": "complex128",
}  # fmt: skip
_GDT = {v: getattr(gdal, f"GDT_{k}") for k, v in _DTYPES.items() if hasattr(gdal, f"GDT_{k}")}
_RESAMPLING = {"nearest": gdal.GRIORA_NearestNeighbour, "average": gdal.GRIORA_Average}
#: Features per OGR transaction: SQLite is fast in big transactions, slow feature by feature.
_BATCH = 2000


@contextmanager
def environment(cache_mb: int) -> Iterator[None]:
    """GDAL's block cache at most ``cache_mb`` and deflate overviews, for this run only."""
    old_cache = gdal.GetCacheMax()
    old_compress = gdal.GetThreadLocalConfigOption("COMPRESS_OVERVIEW", None)
    gdal.SetCacheMax(min(old_cache, cache_mb << 20))
    gdal.SetThreadLocalConfigOption("COMPRESS_OVERVIEW", "DEFLATE")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("COMPRESS_OVERVIEW", old_compress)
        gdal.SetCacheMax(old_cache)


# ---------------------------------------------------------------------- CRS
def parse_crs(text: str) -> Crs:
    """A CRS from ``EPSG:n``, WKT or a PROJ string.

    Raises:
        InputError: text GDAL does not understand as a CRS.
    """
    srs = osr.SpatialReference()
    # osr raises only where someone switched its exceptions on (not here: QGIS's process is
    # shared); else it returns an error code and leaves the message with GDAL.
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        failed = srs.SetFromUserInput(text) != 0
    except RuntimeError as exc:
        raise InputError(f"unknown CRS {text!r} ({exc})") from exc
    finally:
        gdal.PopErrorHandler()
    if failed:
        raise InputError(f"unknown CRS {text!r}: give an EPSG code (EPSG:4326), WKT or PROJ")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # x = easting / longitude
    code = srs.GetAuthorityCode(None) if srs.GetAuthorityName(None) == "EPSG" else None
    geographic = bool(srs.IsGeographic())
    return Crs(
        wkt=srs.ExportToWkt(),
        epsg=int(code) if code else None,
        is_geographic=geographic,
        metres_per_unit=1.0 if geographic else float(srs.GetLinearUnits()),
        native=srs,
    )


def transform_xy(src: Crs, dst: Crs, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0:
        return x, y
    ct = osr.CoordinateTransformation(src.native, dst.native)
    out = np.asarray(ct.TransformPoints(np.column_stack([x.ravel(), y.ravel()])))
    return out[:, 0].reshape(x.shape), out[:, 1].reshape(y.shape)


def _crs_or_none(wkt: str) -> Crs | None:
    return parse_crs(wkt) if wkt else None


def dtype_name(gdal_name: str) -> str:
    """The engine's (rasterio's) name of a GDAL data type: ``Byte`` -> ``uint8``."""
    return _DTYPES.get(gdal_name, "float64")


# ---------------------------------------------------------------------- rasters
class GdalRaster:
    """A raster opened with GDAL (see :class:`.raster_io.Raster`)."""

    def __init__(self, ds: Any, path: str, keep: tuple[Any, ...] = ()) -> None:
        self._ds = ds
        self._keep = keep  # parents of a virtual dataset must outlive it
        self.path = path
        self.width, self.height, self.count = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
        bands = [ds.GetRasterBand(i) for i in range(1, self.count + 1)]
        self.dtypes = tuple(dtype_name(gdal.GetDataTypeName(b.DataType)) for b in bands)
        self.nodata = bands[0].GetNoDataValue() if bands else None
        self.crs = _crs_or_none(ds.GetProjection())
        gt = ds.GetGeoTransform(can_return_null=True)
        self.transform = Transform.from_gdal(gt) if gt else Transform.identity()
        self.gcp_count = ds.GetGCPCount()
        self.gcp_crs = _crs_or_none(ds.GetGCPProjection()) if self.gcp_count else None
        self.descriptions = tuple(b.GetDescription() or "" for b in bands)
        self.units = tuple(b.GetUnitType() or "" for b in bands)
        self.colorinterp = tuple(
            gdal.GetColorInterpretationName(b.GetColorInterpretation()).lower() for b in bands
        )

    def tags(self, band: int) -> dict[str, str]:
        item = self._ds if band == 0 else self._ds.GetRasterBand(band)  # 0: the dataset's
        return dict(item.GetMetadata() or {})

    def has_mask(self, bands: Sequence[int]) -> bool:
        flags = [self._ds.GetRasterBand(b).GetMaskFlags() for b in bands]
        return any(f & (gdal.GMF_PER_DATASET | gdal.GMF_ALPHA) for f in flags)

    def read(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        try:
            data = self._ds.ReadAsArray(col, row, width, height, band_list=list(bands))
        except RuntimeError as exc:
            raise read_error(self.path, exc, row, col, height, width) from exc
        if data is None:  # GDAL without exceptions (another plugin turned them off)
            raise read_error(self.path, RuntimeError("read failed"), row, col, height, width)
        return data.reshape(len(bands), height, width)

    def read_masks(self, bands: Sequence[int], row: int, col: int, height: int, width: int) -> Any:
        try:
            masks = [
                self._ds.GetRasterBand(b).GetMaskBand().ReadAsArray(col, row, width, height)
                for b in bands
            ]
        except RuntimeError as exc:
            raise read_error(self.path, exc, row, col, height, width) from exc
        return np.stack(masks)

    def read_resampled(self, band: int, height: int, width: int, nearest: bool) -> Any:
        b = self._ds.GetRasterBand(band)
        alg = _RESAMPLING["nearest" if nearest else "average"]
        size = dict(buf_xsize=width, buf_ysize=height, resample_alg=alg)
        try:
            data = b.ReadAsArray(0, 0, self.width, self.height, **size)
            mask = b.GetMaskBand().ReadAsArray(0, 0, self.width, self.height, **size)
        except RuntimeError as exc:
            raise read_error(self.path, exc, 0, 0, self.height, self.width) from exc
        return np.ma.masked_array(data, mask=mask == 0)

    def close(self) -> None:
        self._ds = None
        self._keep = ()


def open_raster(path: str) -> GdalRaster:
    """Open ``path`` for reading.

    Raises:
        RasterError: not a raster GDAL can read.
    """
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise RasterError(f"{path} is not a raster GDAL can read ({exc})") from exc
    if ds is None:  # pragma: no cover - exceptions are on
        raise RasterError(f"{path} is not a raster GDAL can read")
    return GdalRaster(ds, path)


def warp(
    raster: GdalRaster, crs: Crs, grid: Grid | None, resampling: str, nodata: Nodata
) -> GdalRaster:
    """A virtual (VRT) warp of ``raster`` to ``crs`` on ``grid`` (None: GDAL's suggested one).

    Raises:
        InputError: a rotated target grid (``gdalwarp`` takes north-up bounds only).
    """
    options: dict[str, Any] = dict(format="VRT", dstSRS=crs.wkt, resampleAlg=resampling,
                                   srcNodata=nodata[0], dstNodata=nodata[1])  # fmt: skip
    if grid is not None:
        transform, width, height = grid
        if transform.b or transform.d:
            raise InputError(
                "the raster's grid is rotated: GDAL cannot resample it on the fly; resample it "
                "first (gdalwarp) or pass a larger resolution_tolerance"
            )
        x0, y0 = transform.apply(0, 0)
        x1, y1 = transform.apply(width, height)
        options.update(outputBounds=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                       width=width, height=height)  # fmt: skip
    ds = gdal.Warp("", raster._ds, **options)
    return GdalRaster(ds, raster.path, keep=(raster,))


class GdalGeoTiff:
    """A GeoTIFF created as ``spec`` says, written in row chunks."""

    def __init__(self, path: Path, spec: RasterSpec) -> None:
        driver = gdal.GetDriverByName("GTiff")
        ds = driver.Create(str(path), spec.width, spec.height, spec.count, _GDT[spec.dtype],
                           options=[f"{k}={v}" for k, v in spec.options.items()])  # fmt: skip
        ds.SetGeoTransform(spec.transform.to_gdal())
        if spec.crs is not None:
            ds.SetProjection(spec.crs.wkt)
        for i in range(1, spec.count + 1):
            band = ds.GetRasterBand(i)
            if spec.nodata is not None:
                band.SetNoDataValue(float(spec.nodata))
            if i <= len(spec.descriptions):
                band.SetDescription(spec.descriptions[i - 1])
        if spec.colormap:
            table = gdal.ColorTable()
            for value, colour in spec.colormap.items():
                table.SetColorEntry(int(value), tuple(colour))
            ds.GetRasterBand(1).SetRasterColorTable(table)
            ds.GetRasterBand(1).SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        for key, value in spec.tags.items():
            ds.SetMetadataItem(key, value)
        self._ds = ds
        self._block = int(spec.options.get("BLOCKYSIZE", 0)) or 1
        self._height = spec.height

    def write(self, row: int, values: np.ndarray) -> None:
        for i in range(values.shape[0]):
            self._ds.GetRasterBand(i + 1).WriteArray(values[i], 0, row)
        end = row + values.shape[1]
        if end % self._block == 0 or end == self._height:
            # Compress finished block rows now rather than all at close: closing a file with
            # the whole block cache dirty takes seconds that no cancel can interrupt.
            self._ds.FlushCache()

    def close(self) -> None:
        if self._ds is not None:
            self._ds.FlushCache()
            self._ds = None


def build_overviews(
    path: Path, factors: list[int], resampling: str, check_cancel: Callable[[], None]
) -> None:
    ds = gdal.Open(str(path), gdal.GA_Update)
    try:
        with _stoppable(check_cancel) as callback:  # seconds on a large output: cancellable
            ds.BuildOverviews(resampling.upper(), factors, callback=callback)
        ds.SetMetadataItem("resampling", resampling, "rio_overview")  # as rasterio records it
    finally:
        ds = None  # closed before a rollback removes the file, even when cancelled


def to_cog(
    src: Path, dst: Path, options: Mapping[str, str], check_cancel: Callable[[], None]
) -> None:
    with _stoppable(check_cancel) as callback:
        ds = gdal.Translate(str(dst), str(src), format="COG", callback=callback,
                            creationOptions=[f"{k}={v}" for k, v in options.items()])  # fmt: skip
        ds = None  # noqa: F841 (closed here, inside the cancellable step)


def _stoppable(check_cancel: Callable[[], None]) -> Any:
    """:func:`raster_io.stoppable` for osgeo, which raises RuntimeError for a stopped step."""
    return stoppable(check_cancel, RuntimeError)


# ---------------------------------------------------------------------- vectors
def trace(
    classes: np.ndarray, row0: int, check_cancel: Callable[[], None] | None = None
) -> list[tuple[Polygon, int]]:
    """Polygons of the 4-connected regions of equal non-zero value of ``classes`` (uint8, in
    memory) and their values, in pixel coordinates: x the column, y ``row0`` + the row.

    ``GDALPolygonize`` on an in-memory copy, the band its own mask (non-zero is traced: the
    background is not); about 8 % faster than a nodata mask band, which reads it once more.
    """
    h, w = classes.shape
    ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((0.0, 1.0, 0.0, float(row0), 0.0, 1.0))
    band = ds.GetRasterBand(1)
    band.WriteArray(classes)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = mem.CreateLayer("raw", geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    with _stoppable(check_cancel or (lambda: None)) as callback:
        gdal.Polygonize(band, band, layer, 0, [], callback=callback)
    layer.ResetReading()
    return [(from_wkb(f.GetGeometryRef().ExportToIsoWkb())[0], f.GetFieldAsInteger(0))
            for f in layer]  # fmt: skip


def union(pieces: Sequence[Polygon]) -> list[Polygon]:
    """The union of polygons (GEOS's cascaded union through OGR): the parts of one region
    traced in several strips become one polygon."""
    multi = ogr.Geometry(ogr.wkbMultiPolygon)
    for piece in pieces:
        multi.AddGeometry(ogr.CreateGeometryFromWkb(to_wkb(piece, multi=False)))
    out = multi.UnionCascaded()
    return from_wkb(out.ExportToIsoWkb()) if out is not None and not out.IsEmpty() else []


class GdalFeatureWriter:
    """One multipolygon layer in a new GeoPackage, written in batched transactions."""

    def __init__(
        self, path: Path, layer: str, crs: Crs | None, fields: Sequence[tuple[str, str]]
    ) -> None:
        self._ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
        srs = crs.native if crs is not None else None
        self._layer = self._ds.CreateLayer(layer, srs=srs, geom_type=ogr.wkbMultiPolygon)
        kinds = {"int": ogr.OFTInteger64, "real": ogr.OFTReal, "str": ogr.OFTString}
        setters = {"int": ogr.Feature.SetFieldInteger64, "real": ogr.Feature.SetField,
                   "str": ogr.Feature.SetFieldString}  # fmt: skip
        for field_name, kind in fields:
            self._layer.CreateField(ogr.FieldDefn(field_name, kinds[kind]))
        self._defn = self._layer.GetLayerDefn()
        self._setters = {
            name: (self._defn.GetFieldIndex(name), setters[kind]) for name, kind in fields
        }
        self._pending = 0
        self.count = 0
        self._layer.StartTransaction()

    def add(self, polygon: Polygon | None, **values: object) -> None:
        feature = ogr.Feature(self._defn)
        if polygon is not None:  # None: a null geometry (a catalogue row of an unreadable scene)
            feature.SetGeometryDirectly(ogr.CreateGeometryFromWkb(to_wkb(polygon)))
        for key, value in values.items():
            if value is not None:
                # by index and type: OGR's SetField(name, value) looks both up for every value
                index, setter = self._setters[key]
                setter(feature, index, value)
        self._layer.CreateFeature(feature)
        self.count += 1
        self._pending += 1
        if self._pending >= _BATCH:
            self._layer.CommitTransaction()
            self._layer.StartTransaction()
            self._pending = 0

    def close(self) -> None:
        if self._ds is not None:
            self._layer.CommitTransaction()
            self._layer = self._defn = None
            self._ds = None  # OGR closes the file when the last reference goes


def read_polygons(path: Path) -> tuple[list[Polygon], Crs | None]:
    """Polygons of every layer of a vector file GDAL reads, and the first layer's CRS.

    Raises:
        RasterError: a file GDAL cannot read as vectors.
    """
    try:
        ds = ogr.Open(str(path))
    except RuntimeError as exc:
        raise RasterError(f"{path} is not a vector file GDAL can read ({exc})") from exc
    if ds is None:
        raise RasterError(f"{path} is not a vector file GDAL can read")
    polygons: list[Polygon] = []
    crs = None
    for layer in ds:
        srs = layer.GetSpatialRef()
        if srs is not None and crs is None:
            crs = parse_crs(srs.ExportToWkt())
        for feature in layer:
            g = feature.GetGeometryRef()
            if g is not None and ogr.GT_Flatten(g.GetGeometryType()) in (
                ogr.wkbPolygon,
                ogr.wkbMultiPolygon,
            ):
                polygons += from_wkb(g.ExportToIsoWkb())
    ds = None
    return polygons, crs


def sieve(classes: np.ndarray, pixels: int) -> np.ndarray:
    """``classes`` (uint8) with 4-connected regions of fewer than ``pixels`` pixels merged into
    their largest neighbour (``GDALSieveFilter``, on an in-memory copy)."""
    h, w = classes.shape
    ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    band = ds.GetRasterBand(1)
    band.WriteArray(classes)
    gdal.SieveFilter(band, None, band, int(pixels), 4)
    return band.ReadAsArray()


def simplify(polygon: Polygon, tolerance: float) -> Polygon:
    """GEOS's topology-preserving simplification; of a polygon that splits, the largest part."""
    out = ogr.CreateGeometryFromWkb(to_wkb(polygon, multi=False)).SimplifyPreserveTopology(
        tolerance
    )
    return largest_polygon(out.ExportToIsoWkb() if out is not None and not out.IsEmpty() else None)


#: This backend, as :func:`.raster_io.get` hands it out.
BACKEND: RasterIO = ModuleBackend(
    sys.modules[__name__], create_geotiff=GdalGeoTiff, feature_writer=GdalFeatureWriter
)

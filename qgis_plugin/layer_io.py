"""Adapters from QGIS objects to the plain data the checks and the engine take (main thread)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .compat import GEOMETRY_POLYGON, first
from .core import core
from .validation import InputRefused, RasterFacts

_WKT2 = first(
    "Qgis.CrsWktVariant.Wkt2_2019Simplified",
    "QgsCoordinateReferenceSystem.WktVariant.WKT2_2019_SIMPLIFIED",
)


def raster_path(layer: QgsRasterLayer) -> str:
    """What GDAL opens for ``layer`` (its source without QGIS's ``|option`` suffixes)."""
    if layer.providerType() == "gdal":
        parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
        if parts.get("path"):
            return str(parts["path"])
    return layer.source()


def layer_file(layer: Any, what: str) -> str:
    """The file behind a raster or vector layer, for the engine to read (a GeoPackage layer's
    ``|layername=`` part dropped: the engine reads every polygon layer of the file).

    Raises:
        InputRefused: a layer not stored in a file (memory layer, web service).
    """
    path = raster_path(layer) if isinstance(layer, QgsRasterLayer) else layer.source()
    path = path.split("|")[0]
    if not Path(path).is_file():
        raise InputRefused(f"{what} must be a layer stored in a file, not {layer.source()!r}")
    return path


def raster_facts(layer: QgsRasterLayer) -> RasterFacts:
    """Facts for :mod:`~.validation`, read from the file with GDAL (metadata only, no pixels).

    GDAL rather than the layer: QGIS may have given a CRS-less file a CRS of its own, and
    QGIS 3.22's providers do not expose band descriptions; the engine reads the file.
    """
    from osgeo import gdal

    path = raster_path(layer)
    provider = layer.providerType()
    ds = None
    if provider == "gdal":
        try:
            ds = gdal.Open(path)
        except RuntimeError:  # GDAL raises only where exceptions are switched on
            ds = None
    if ds is None:
        count = layer.bandCount()
        return RasterFacts(
            layer.name(), path, provider, layer.crs().isValid(), count, ("",) * count, (), ()
        )
    bands = [ds.GetRasterBand(i) for i in range(1, ds.RasterCount + 1)]
    georeferenced = bool(ds.GetProjectionRef()) or bool(ds.GetGCPCount() and ds.GetGCPProjection())
    return RasterFacts(
        name=layer.name(),
        path=path,
        provider=provider,
        georeferenced=georeferenced,
        band_count=ds.RasterCount,
        descriptions=tuple(b.GetDescription() or "" for b in bands),
        data_types=tuple(gdal.GetDataTypeName(b.DataType) for b in bands),
        colours=tuple(
            gdal.GetColorInterpretationName(b.GetColorInterpretation()).lower() for b in bands
        ),
        pixel_size_m=_pixel_size(path) if georeferenced else None,
        band_tags=tuple(dict(b.GetMetadata() or {}) for b in bands),
    )


def _pixel_size(path: str) -> tuple[float, float] | None:
    """The engine's ground pixel size of the file (None where it cannot tell)."""
    try:
        gdal = core("inference.io.raster_io").get("gdal")  # the plugin reads through osgeo
        return core("inference.scene.source").scene_pixel_size_m(path, gdal)
    except core("errors").SarmaeError:
        return None


def band_labels(facts: RasterFacts) -> list[str]:
    """``1: VV`` style labels for band pickers."""
    return [
        f"{i + 1}: {facts.descriptions[i]}"
        if i < len(facts.descriptions) and facts.descriptions[i]
        else f"Band {i + 1}"
        for i in range(facts.band_count)
    ]


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as the engine (PROJ through GDAL's osr) reads it: EPSG code, else WKT2."""
    authid = crs.authid()
    if authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(_WKT2)


def canvas_area(canvas: Any) -> tuple[tuple[float, float, float, float], str]:
    """The map view as ``((xmin, ymin, xmax, ymax), crs)``."""
    ext = canvas.extent()
    crs = canvas.mapSettings().destinationCrs()
    return (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()), crs_text(crs)


def selected_polygons(layer: QgsVectorLayer | None) -> tuple[dict[str, Any], str]:
    """Selected polygons of ``layer`` as a GeoJSON FeatureCollection and its CRS.

    Raises:
        InputRefused: no layer, not polygons, or nothing selected.
    """
    if layer is None or not isinstance(layer, QgsVectorLayer):
        raise InputRefused("choose a polygon layer for the area (Area ▸ Selected polygons)")
    if layer.geometryType() != GEOMETRY_POLYGON:
        raise InputRefused(f"'{layer.name()}' is not a polygon layer; choose polygons for the area")
    features = [
        {"type": "Feature", "properties": {}, "geometry": json.loads(f.geometry().asJson())}
        for f in layer.getSelectedFeatures()
        if f.hasGeometry() and not f.geometry().isEmpty()
    ]
    if not features:
        raise InputRefused(
            f"no polygon of '{layer.name()}' is selected; select the polygons to process "
            "(Select Features tool) or choose another area"
        )
    return {"type": "FeatureCollection", "features": features}, crs_text(layer.crs())

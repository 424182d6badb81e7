"""The catalogue of a many-scene run: one row per scene, as a GeoPackage layer and a CSV.

``catalogue.gpkg`` (layer ``scenes``) holds each scene's footprint in EPSG:4326 so that a GIS
shows at a glance which scenes of an event were mapped, failed or skipped; ``catalogue.csv``
holds the same rows for a spreadsheet or pandas. Both are rewritten whole, in one step, at
the end of every run, from every scene's record (the ones skipped too).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_path
from ..io import raster_io
from ..io.raster_io import RasterIO

#: Columns of both files: (name, GeoPackage type); the job's figures (``water_km2``,
#: ``ship_count``) come after ``status``.
FIELDS = [("scene", "str"), ("path", "str"), ("job", "str"), ("status", "str")]
TAIL = [("seconds", "real"), ("error", "str"), ("output", "str")]
LAYER = "scenes"
#: Points along each edge of a footprint: a UTM scene's edges curve in longitude/latitude.
_EDGE_POINTS = 16
#: Footprint rings: lists of (lon, lat) pairs, exterior first.
Footprint = list[list[tuple[float, float]]]


def footprint(raster: str | os.PathLike, fileio: RasterIO | None = None) -> Footprint | None:
    """Outline of a raster in EPSG:4326 (lon, lat), edges densified; None without a CRS.

    A raster georeferenced by GCPs only (Sentinel-1 GRD measurement TIFFs) is outlined on the
    grid GDAL would warp it to, as :mod:`.source` does to read it.

    Raises:
        RasterError: the raster cannot be opened.
    """
    from ..scene.source import open_dataset

    files_io = raster_io.get(fileio)
    ds = open_dataset(raster, files_io)
    view = None
    try:
        src, crs = ds, ds.crs
        if crs is None and ds.gcp_count and ds.gcp_crs is not None:
            view = files_io.warp(ds, ds.gcp_crs, None, "nearest", (ds.nodata, 0.0))
            src, crs = view, ds.gcp_crs
        if crs is None:
            return None
        t = np.linspace(0.0, 1.0, _EDGE_POINTS, endpoint=False)
        w, h = float(src.width), float(src.height)
        cols = np.concatenate([t * w, np.full_like(t, w), (1 - t) * w, np.zeros_like(t)])
        rows = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), (1 - t) * h])
        x, y = src.transform.apply(cols, rows)
        lon, lat = files_io.transform_xy(crs, files_io.parse_crs("EPSG:4326"), x, y)
    finally:
        if view is not None:
            view.close()
        ds.close()
    ring = [(float(a), float(b)) for a, b in zip(lon, lat, strict=True)]
    return [[*ring, ring[0]]]


def write_catalogue(
    records: Sequence[dict[str, Any]],
    outdir: Path,
    fileio: RasterIO | None = None,
    figures: Sequence[tuple[str, str]] = (),
) -> dict[str, Path]:
    """Write ``catalogue.gpkg`` and ``catalogue.csv`` in ``outdir``; returns their paths.

    Args:
        records: one per scene, with the keys of the columns and ``footprint``
            (:data:`Footprint` or None: a scene that could not be read has a null geometry).
        outdir: the run's output folder.
        fileio: the IO backend that writes the GeoPackage (``gdal``, ``rasterio``, None: auto).
        figures: the job's columns, ``(name, type)`` (e.g. ``("water_km2", "real")``).
    """
    fields = [*FIELDS, *figures, *TAIL]
    files_io = raster_io.get(fileio)
    paths = {"gpkg": outdir / "catalogue.gpkg", "csv": outdir / "catalogue.csv"}
    # A temporary name ending in .gpkg (GDAL's driver warns on other suffixes), renamed over
    # the previous catalogue only once complete.
    tmp = outdir / f".catalogue.{os.getpid()}.gpkg"
    try:
        writer = files_io.feature_writer(tmp, LAYER, files_io.parse_crs("EPSG:4326"), fields)
        try:
            for r in records:
                rings = r.get("footprint")
                polygon = [np.asarray(ring, dtype=float) for ring in rings] if rings else None
                writer.add(polygon, **{name: r.get(name) for name, _ in fields})
        finally:
            writer.close()
        os.replace(tmp, paths["gpkg"])
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([name for name, _ in fields] + ["west", "south", "east", "north"])
        for r in records:
            out.writerow([_csv(r.get(name)) for name, _ in fields] + _bounds(r.get("footprint")))
    return paths


def _csv(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def _bounds(rings: Footprint | None) -> list[Any]:
    if not rings:
        return ["", "", "", ""]
    xy = np.asarray(rings[0], dtype=float)
    return [f"{v:.6f}" for v in (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())]

"""Polygons as numpy rings: GeoJSON and WKB in and out, bounds, areas, rasterising.

A polygon is a list of closed rings (``[n, 2]`` float arrays, first vertex = last), the
exterior first. Both IO backends hand polygons over in this form, so areas, hole filling and
area-of-interest masks are computed once, here and in :mod:`.geodesy`, in numpy.

Why this is written here and not taken from shapely: the QGIS plugin runs this engine with
numpy, onnxruntime and GDAL's own bindings only (QGIS ships no shapely), so what both IO
backends share must be numpy. The libraries do the rest, in each backend: GDAL/OGR traces,
sieves, simplifies and writes vector files on the GDAL path; rasterio (sieve, the GDAL inside it
for tracing), pyogrio (vector files) and shapely (simplification) on the rasterio path. What
stays here: the ISO WKB codec for polygons (the form both backends' libraries hand over), the
even-odd rasteriser of area-of-interest masks (per tile, with no backend call) and the shoelace
area of a ring.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...errors import InputError
from .georef import Transform

Polygon = list[np.ndarray]
#: WKB geometry type codes (ISO).
WKB_POLYGON, WKB_MULTIPOLYGON = 3, 6


# ---------------------------------------------------------------------- GeoJSON
def geojson_polygons(obj: dict[str, Any]) -> list[Polygon]:
    """Polygons of a GeoJSON geometry, feature or feature collection.

    Raises:
        InputError: anything other than polygons.
    """
    kind = obj.get("type")
    if kind == "FeatureCollection":
        return [p for f in obj.get("features", []) for p in geojson_polygons(f)]
    if kind == "Feature":
        return geojson_polygons(obj.get("geometry") or {})
    if kind == "Polygon":
        return [_rings(obj["coordinates"])]
    if kind == "MultiPolygon":
        return [_rings(p) for p in obj["coordinates"]]
    raise InputError(f"area of interest must be polygons, got GeoJSON {kind!r}")


def _rings(coords: Iterable[Any]) -> Polygon:
    return [np.asarray(r, dtype=float)[:, :2] for r in coords if len(r)]


def box_polygon(box: tuple[float, ...], n: int = 21) -> Polygon:
    """A box as a polygon with ``n`` points per side, so it stays a fair shape once reprojected."""
    x0, y0, x1, y1 = box
    t = np.linspace(0.0, 1.0, n)[:-1]
    up, down = t, 1.0 - t
    xs = np.concatenate([x0 + (x1 - x0) * up, [x1] * len(t), x0 + (x1 - x0) * down, [x0] * len(t)])
    ys = np.concatenate([[y0] * len(t), y0 + (y1 - y0) * up, [y1] * len(t), y0 + (y1 - y0) * down])
    ring = np.column_stack([xs, ys])
    return [np.vstack([ring, ring[:1]])]


def bounds(polygons: list[Polygon]) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of all vertices."""
    xy = np.concatenate([r for p in polygons for r in p])
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


# ---------------------------------------------------------------------- WKB
def to_wkb(polygon: Polygon, multi: bool = True) -> bytes:
    """Little-endian ISO WKB of a polygon (as a one-part multipolygon when ``multi``)."""
    parts = [struct.pack("<BII", 1, WKB_POLYGON, len(polygon))]
    for ring in polygon:
        xy = np.ascontiguousarray(ring[:, :2], dtype="<f8")
        parts += [struct.pack("<I", len(xy)), xy.tobytes()]
    body = b"".join(parts)
    return struct.pack("<BII", 1, WKB_MULTIPOLYGON, 1) + body if multi else body


def from_wkb(data: bytes) -> list[Polygon]:
    """Polygons of a WKB polygon or multipolygon (2D, Z, M or ZM; ISO or EWKB codes)."""
    polygons, _ = _read_wkb(memoryview(data), 0)
    return polygons


def _read_wkb(buf: memoryview, pos: int) -> tuple[list[Polygon], int]:
    order = "<" if buf[pos] == 1 else ">"
    (code,) = struct.unpack_from(f"{order}I", buf, pos + 1)
    pos += 5
    dims = 2 + bool(code & 0x80000000) + bool(code & 0x40000000)  # EWKB Z and M flags
    code &= 0x0FFFFFFF
    dims += {1: 1, 2: 1, 3: 2}.get(code // 1000, 0)  # ISO: 1000 Z, 2000 M, 3000 ZM
    kind = code % 1000
    if kind == WKB_POLYGON:
        (n_rings,) = struct.unpack_from(f"{order}I", buf, pos)
        pos += 4
        rings = []
        for _ in range(n_rings):
            (n,) = struct.unpack_from(f"{order}I", buf, pos)
            pos += 4
            xy = np.frombuffer(buf, dtype=f"{order}f8", count=n * dims, offset=pos)
            rings.append(xy.reshape(n, dims)[:, :2].astype(float))
            pos += 8 * n * dims
        return [rings], pos
    if kind == WKB_MULTIPOLYGON:
        (n_parts,) = struct.unpack_from(f"{order}I", buf, pos)
        pos += 4
        polygons: list[Polygon] = []
        for _ in range(n_parts):
            part, pos = _read_wkb(buf, pos)
            polygons += part
        return polygons, pos
    raise InputError(f"expected polygons, got WKB geometry type {code}")


def largest_polygon(wkb: bytes | None) -> Polygon:
    """The largest polygon of a simplified shape given as WKB (what both backends' GEOS hand
    back): a polygon that split keeps its largest part; empty, None or no polygon left: []."""
    if wkb is None:
        return []
    try:
        parts = from_wkb(wkb)
    except InputError:  # a geometry collection: nothing polygonal left
        return []
    return max(parts, key=lambda p: abs(ring_area(p[0])), default=[])


def ring_area(ring: np.ndarray) -> float:
    """Signed planar area of a closed ring (shoelace; positive anticlockwise)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


# ---------------------------------------------------------------------- rasterising
def rasterize(polygons: list[Polygon], transform: Transform, height: int, width: int) -> np.ndarray:
    """True where a pixel's centre lies inside any polygon (holes excluded), like GDAL's
    rasterisation without ``ALL_TOUCHED``. Scanline even-odd fill, exact for any shape."""
    inside = np.zeros((height, width), dtype=bool)
    inv = transform.inverse()
    for polygon in polygons:
        edges = []
        for ring in polygon:
            cols, rows = inv.apply(ring[:, 0], ring[:, 1])
            edges.append(np.column_stack([cols[:-1], rows[:-1], cols[1:], rows[1:]]))
        inside |= _fill(np.concatenate(edges), height, width)
    return inside


def _fill(edges: np.ndarray, height: int, width: int) -> np.ndarray:
    """Even-odd fill of pixel centres by ``edges`` ([m, 4] x0, y0, x1, y1 in pixels).

    Memory follows the number of (edge, row) crossings, about two per row and ring plus one per
    edge: small for any area of interest.
    """
    toggles = np.zeros((height, width + 1), dtype=np.int32)
    # Rows whose centre (row + 0.5) each edge crosses, half-open in y so that a vertex shared
    # by two edges counts once.
    y_lo = np.minimum(edges[:, 1], edges[:, 3])
    y_hi = np.maximum(edges[:, 1], edges[:, 3])
    first = np.clip(np.ceil(y_lo - 0.5), 0, height).astype(np.int64)
    counts = np.clip(np.ceil(y_hi - 0.5), 0, height).astype(np.int64) - first
    keep = counts > 0
    edges, first, counts = edges[keep], first[keep], counts[keep]
    if len(edges):
        idx = np.repeat(np.arange(len(edges)), counts)
        offsets = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = first[idx] + offsets
        x0, y0, x1, y1 = edges[idx].T
        xc = x0 + (rows + 0.5 - y0) * (x1 - x0) / (y1 - y0)
        # Centres right of the crossing (col + 0.5 > x) are toggled.
        cols = np.clip(np.floor(xc - 0.5).astype(np.int64) + 1, 0, width)
        np.add.at(toggles, (rows, cols), 1)
    return (np.cumsum(toggles[:, :width], axis=1) % 2).astype(bool)

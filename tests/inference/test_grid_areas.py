"""Polygon areas from the rows' pixel areas (``GridAreas``) against areas from projecting every
vertex to an equal-area projection (``EqualArea.ring_areas``), on a UTM and a geographic grid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sarmae_core.inference.geo.geodesy import EqualArea, GridAreas
from sarmae_core.inference.geo.georef import Transform
from sarmae_core.inference.io import raster_io


def pixel_rings(transform: Transform, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Closed rings along pixel edges (staircases, as tracing gives), in the grid's CRS."""
    rings = []
    for _ in range(n):
        r0, c0 = rng.integers(0, 900, 2)
        h, w = rng.integers(1, 90, 2)
        steps = rng.integers(0, w, 3)
        # an L-shaped staircase: pixel-edge vertices only, anticlockwise in pixel space
        cols = np.array([c0, c0 + w, c0 + w, c0 + steps[0], c0 + steps[0], c0, c0])
        rows = np.array([r0, r0, r0 + h // 2, r0 + h // 2, r0 + h, r0 + h, r0])
        x, y = transform.apply(cols.astype(float), rows.astype(float))
        rings.append(np.column_stack([x, y]))
    return rings


def densify(ring: np.ndarray, step: float) -> np.ndarray:
    """``ring`` with vertices inserted every ``step`` along each edge."""
    parts = []
    for a, b in itertools.pairwise(ring):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        t = np.arange(n)[:, None] / n
        parts.append(a + t * (b - a))
    return np.vstack([*parts, ring[-1:]])


@pytest.mark.parametrize(
    "epsg, transform",
    [
        (32631, Transform(10.0, 0.0, 600000.0, 0.0, -10.0, 4850000.0)),  # UTM, 10 m
        (4326, Transform(1e-3, 0.0, 4.0, 0.0, -1e-3, 60.0)),  # 1 km grid from 60 N to 59 N
    ],
)
def test_grid_areas_match_the_equal_area_projection(epsg, transform) -> None:
    fileio = raster_io.get()
    crs = fileio.parse_crs(f"EPSG:{epsg}")
    area = EqualArea.for_grid(fileio, crs, transform, 1000, 1000)
    grid = GridAreas(area, transform, 1000, 1000)
    rings = pixel_rings(transform, np.random.default_rng(0), 200)
    # the projection's reference needs short edges: a parallel is a curve in the projection
    # (on the geographic grid straight chords of 90 km edges are off by up to 1 %)
    exact = area.ring_areas([densify(r, 0.25 * abs(transform.a)) for r in rings])
    # on the geographic grid pixel areas shrink by 3 % from south to north: the rows carry it
    assert grid.ring_areas(rings) == pytest.approx(exact, rel=2e-4)
    # a ring of whole pixels is the sum of its rows' pixel areas, exactly
    rows = area.row_pixel_areas(transform, 1000, 1000)
    box = pixel_rings(transform, np.random.default_rng(1), 1)[0][[0, 1, 2, 5, 6]]
    cols, rws = transform.inverse().apply(box[:, 0], box[:, 1])
    c0, c1, r0, r1 = (round(v) for v in (cols.min(), cols.max(), rws.min(), rws.max()))
    box = np.column_stack(transform.apply(np.array([c0, c1, c1, c0, c0], float),
                                          np.array([r0, r0, r1, r1, r0], float)))  # fmt: skip
    assert grid.ring_areas([box])[0] == pytest.approx((c1 - c0) * rows[r0:r1].sum(), rel=1e-12)
    assert grid.ring_areas([]).size == 0

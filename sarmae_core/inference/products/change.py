"""Flood as change: what the analyst's own layers take out of the water a model maps.

Operational flood services (Copernicus GFM, HydroSAR) do not report all water on the day: they
report **new** water, and say where they could not decide. A flood run takes two optional
layers of the user's for that, read on the output grid chunk by chunk as the map is written:

- **reference water**: water that is there in normal times (a permanent-water raster, nonzero =
  water, or polygons). It is never flood, whatever the model says.
- **HAND** (height above nearest drainage, m): pixels more than ``hand_threshold_m`` above the
  drainage (15 m by default, as HydroSAR) cannot hold flood water; dark pixels there are
  radar shadow, tarmac or dry sand. They are excluded, not called dry.

- **DEM** (m): where the terrain faces the sensor more steeply than the incidence angle the
  radar sees layover, where it faces away more steeply than 90 degrees minus it, shadow; both
  are dark or meaningless in backscatter and excluded. The look direction comes from the after
  scene's orbit direction (Sentinel-1 looks right: east when ascending, west when
  descending); without it they are not computed (and the run says so). Layover from local
  slopes; shadow also where a ridge nearer the sensor hides lower ground behind it.

The flood class map then holds ``0`` no flood, ``1`` flood, ``2`` reference water, ``3``
excluded (255 no data). The areas of each class are the run's summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...errors import ConfigError, InputError, RasterError
from ..geo.aoi import read_polygons
from ..geo.geodesy import grids_overlap
from ..geo.geometry import Polygon, rasterize
from ..geo.georef import Crs, Transform
from ..io.raster_io import Raster, RasterIO
from ..notes import Notes

#: Class names of a flood map with the user's layers applied (index = class value).
FLOOD_CLASSES = ("background", "flood", "reference water", "excluded")
FLOOD, REFERENCE, EXCLUDED = 1, 2, 3
#: HAND above which a pixel cannot be flooded, m (HydroSAR's default).
HAND_THRESHOLD_M = 15.0
#: Look azimuth of a right-looking sensor by orbit direction, degrees clockwise from north
#: (Sentinel-1 heads about 348 degrees ascending and 192 descending; it looks 90 degrees right).
LOOK_AZIMUTH = {"ASCENDING": 78.0, "DESCENDING": 282.0}
#: Exclusion codes of the exclusion raster.
EXCLUDED_HAND, NO_DATA, EXCLUDED_GEOMETRY = 1, 2, 3
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml", ".gml")


class ChunkLayers(NamedTuple):
    """A flood run's layers over some output rows (bool arrays).

    Attributes:
        reference: reference water.
        excluded: excluded for any reason (HAND, radar shadow or layover).
        geometry: the part of ``excluded`` that is radar shadow or layover.
        observed: water on the after date from a separate water map (two-date runs), or None.
    """

    reference: np.ndarray
    excluded: np.ndarray
    geometry: np.ndarray
    observed: np.ndarray | None = None


class ChangeLayers:
    """Reference water and HAND of a flood run, on the output grid.

    Args:
        fileio: the run's IO backend.
        reference_water: a raster (nonzero = water) or a vector file of water polygons; None.
        hand: a HAND raster in metres; None.
        hand_threshold_m: HAND above which pixels are excluded.
        crs, transform, width, height: the output grid (the after scene's).
        notes: receives what was assumed.

    Raises:
        RasterError: a missing or unreadable layer; InputError: a layer that does not overlap
            the scene, has no CRS, or holds no polygons.
    """

    def __init__(
        self,
        fileio: RasterIO,
        reference_water: str | os.PathLike | None,
        hand: str | os.PathLike | None,
        hand_threshold_m: float,
        crs: Crs | None,
        transform: Transform,
        width: int,
        height: int,
        notes: Notes,
        dem: str | os.PathLike | None = None,
        incidence_deg: float = 39.0,
        orbit_direction: str | None = None,
        pixel_m: tuple[float, float] | None = None,
        observed: str | os.PathLike | None = None,
    ) -> None:
        if crs is None and (reference_water is not None or hand is not None or dem is not None):
            raise InputError(
                "the after scene has no CRS: reference water and HAND cannot be matched to it; "
                "georeference the scene"
            )
        self.transform, self.width = transform, width
        self.hand_threshold_m = hand_threshold_m
        self._opened: list[Raster] = []
        self._grid = (crs, transform, width, height)
        self._fileio = fileio
        self._reference: Raster | None = None
        self._polygons: list[Polygon] = []
        self._hand: Raster | None = None
        self._dem: Raster | None = None
        self._observed: Raster | None = None
        self._look: np.ndarray | None = None  # unit look vector (east, north) on the ground
        self._height = height
        try:
            if reference_water is not None:
                path = Path(reference_water)
                if path.suffix.lower() in VECTOR_SUFFIXES:
                    self._polygons = _polygons_on(fileio, path, crs, transform, width, height)
                else:
                    self._reference = self._on_grid(path, "reference water", "nearest")
            if hand is not None:
                self._hand = self._on_grid(Path(hand), "HAND", "bilinear")
                notes.info(
                    f"pixels more than {hand_threshold_m:g} m above the nearest drainage "
                    f"({Path(hand).name}) are excluded"
                )
            if observed is not None:  # the water model's class map of the after scene
                self._observed = self._on_grid(Path(observed), "observed water", "nearest")
            if dem is not None:
                self._setup_dem(Path(dem), incidence_deg, orbit_direction, pixel_m, notes)
        except BaseException:
            self.close()
            raise

    def _setup_dem(
        self,
        dem: Path,
        incidence_deg: float,
        orbit_direction: str | None,
        pixel_m: tuple[float, float] | None,
        notes: Notes,
    ) -> None:
        azimuth = LOOK_AZIMUTH.get((orbit_direction or "").upper())
        if azimuth is None or pixel_m is None:
            notes.warn(
                f"radar shadow and layover were not computed from {dem.name}: the after scene's "
                "metadata gives no orbit direction (ORBIT_DIRECTION), so the look direction is "
                "unknown"
            )
            return
        self._dem = self._on_grid(dem, "DEM", "bilinear")
        a = np.radians(azimuth)
        self._look = np.array([np.sin(a), np.cos(a)])
        self._pixel_m = pixel_m
        self._tan_layover = float(np.tan(np.radians(incidence_deg)))
        self._tan_shadow = float(np.tan(np.radians(90.0 - incidence_deg)))
        notes.info(
            f"radar shadow and layover from {dem.name}: {orbit_direction.lower()} orbit, "
            f"looking {azimuth:g} degrees from north, incidence {incidence_deg:g} degrees"
        )

    def _geometry(self, row: int, height: int) -> np.ndarray:
        """Radar shadow or layover of output rows ``row .. row + height`` from local slopes."""
        r0, r1 = max(row - 1, 0), min(row + height + 1, self._height)
        ds = self._dem
        z = ds.read([1], r0, 0, r1 - r0, self.width)[0].astype(np.float64)
        valid = ds.read_masks([1], r0, 0, r1 - r0, self.width)[0] > 0
        z[~valid] = np.nan
        # north-up grids: columns run east, rows south
        dz_row, dz_col = np.gradient(z, self._pixel_m[1], self._pixel_m[0])
        slope = dz_col * self._look[0] - dz_row * self._look[1]  # rise per m away from sensor
        with np.errstate(invalid="ignore"):
            bad = (slope > self._tan_layover) | (-slope > self._tan_shadow)
        bad = bad[row - r0 : row - r0 + height]
        return bad | self._cast_shadow(z[row - r0 : row - r0 + height])

    def _cast_shadow(self, z: np.ndarray) -> np.ndarray:
        """Shadow cast by higher ground nearer the sensor, row by row (Sentinel-1 looks within
        12 degrees of east or west, so along the rows): a pixel is in shadow when some pixel
        between it and the sensor stands above the ray that grazes it, i.e. when the running
        maximum of ``z + d tan(90 - incidence)`` (``d``: distance away from the sensor along the
        look direction) exceeds its own value."""
        step = self._pixel_m[0] / max(abs(float(self._look[0])), 1e-6)  # m per column
        away = np.arange(z.shape[1]) * step * self._tan_shadow
        if self._look[0] < 0:  # looking west: the sensor is east, distance grows westwards
            away = away[::-1]
        h = z + away
        ahead = h if self._look[0] >= 0 else h[:, ::-1]
        highest = np.fmax.accumulate(ahead, axis=1)  # NaN (no DEM) neither casts nor counts
        if self._look[0] < 0:
            highest = highest[:, ::-1]
        with np.errstate(invalid="ignore"):
            return highest > h + 1e-6

    def _on_grid(self, path: Path, what: str, resampling: str) -> Raster:
        if not path.exists():
            raise RasterError(f"the {what} raster {path} does not exist")
        src = self._fileio.open_raster(str(path))
        self._opened.append(src)
        if src.crs is None:
            raise InputError(f"the {what} raster {path.name} has no CRS: georeference it first")
        crs, transform, width, height = self._grid
        here = (src.crs, src.transform, src.width, src.height)
        if not grids_overlap(self._fileio, *here, crs, transform, width, height):
            raise InputError(
                f"the {what} raster {path.name} does not overlap the scene: give one that covers it"
            )
        # No nodata guessed: HAND 0 is the drainage itself and reference 0 is dry land, not fill
        nodata = src.nodata
        view = self._fileio.warp(src, crs, (transform, width, height), resampling,
                                 (nodata, float("nan") if nodata is None else nodata))  # fmt: skip
        self._opened.append(view)
        return view

    def read(self, row: int, height: int) -> ChunkLayers:
        """The layers of output rows ``row .. row + height``."""
        shape = (height, self.width)
        reference = np.zeros(shape, dtype=bool)
        if self._reference is not None:
            ds = self._reference
            values = ds.read([1], row, 0, height, self.width)[0]
            valid = ds.read_masks([1], row, 0, height, self.width)[0] > 0
            with np.errstate(invalid="ignore"):
                reference = valid & (values != 0) & ~_nan(values)
        if self._polygons:
            t = self.transform.then(Transform.translation(0, row))
            reference |= rasterize(self._polygons, t, height, self.width)
        excluded = np.zeros(shape, dtype=bool)
        if self._hand is not None:
            ds = self._hand
            hand = ds.read([1], row, 0, height, self.width)[0].astype(np.float32, copy=False)
            valid = ds.read_masks([1], row, 0, height, self.width)[0] > 0
            with np.errstate(invalid="ignore"):
                excluded = valid & (hand > self.hand_threshold_m)
        geometry = np.zeros(shape, dtype=bool)
        if self._dem is not None:
            geometry = self._geometry(row, height)
            excluded = excluded | geometry
        observed = None
        if self._observed is not None:
            values = self._observed.read([1], row, 0, height, self.width)[0]
            observed = values == 1
        return ChunkLayers(reference, excluded, geometry, observed)

    def close(self) -> None:
        for ds in reversed(self._opened):
            ds.close()
        self._opened.clear()


def apply_change(
    classes: np.ndarray, reference: np.ndarray, excluded: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """A flood class map from the model's classes (1 = flood or water on the after date):
    reference water is never flood, excluded pixels are neither flood nor dry. In place."""
    classes[excluded & valid] = EXCLUDED
    classes[reference & valid] = REFERENCE  # known water wins over a HAND exclusion
    return classes


def likelihood(probability: np.ndarray, classes: np.ndarray, nodata: int) -> np.ndarray:
    """Flood likelihood in percent (uint8 0-100), as Copernicus GFM delivers it: 0 on
    reference water, ``nodata`` where excluded or without data (classes 255)."""
    out = np.rint(np.clip(probability, 0.0, 1.0) * 100.0).astype(np.uint8)
    out[classes == REFERENCE] = 0
    out[(classes == EXCLUDED) | (classes == 255)] = nodata
    return out


def check_flood_basis(before: object, reference_water: object) -> None:
    """Flood is change against what was there before the event: the scene before it, or the
    water of normal times. One of them is needed (the front ends name their own controls).

    Raises:
        ConfigError: neither is given.
    """
    if before is None and reference_water is None:
        raise ConfigError(
            "flood needs what was there before the event: the scene before it (before=..., "
            "--before BEFORE.tif) or the water of normal times (reference_water=..., "
            "--reference-water W.tif|W.gpkg)"
        )


def check_layers(job: str | None, reference_water: object, hand: object, dem: object) -> None:
    """Reference water, HAND and a DEM belong to flood runs.

    Raises:
        ConfigError: naming what to change.
    """
    given = [n for n, v in (("reference_water", reference_water), ("hand", hand), ("dem", dem))
             if v]  # fmt: skip
    if given and job != "flood":
        raise ConfigError(
            f"{' and '.join(given)} apply to flood mapping: use job='flood' "
            "(sarmae predict flood ...), or leave them out"
        )


def _nan(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)


def _polygons_on(
    fileio: RasterIO, path: Path, crs: Crs, transform: Transform, width: int, height: int
) -> list[Polygon]:
    """Water polygons of a vector file in the grid's CRS (refused when none meets the grid)."""
    try:
        geoms, file_crs = read_polygons(path, fileio)
    except (RasterError, InputError) as exc:
        raise type(exc)(str(exc).replace("area file", "reference water file", 1)) from exc
    if file_crs is not None and file_crs != crs:
        geoms = [
            [np.column_stack(fileio.transform_xy(file_crs, crs, *r.T)) for r in p] for p in geoms
        ]
    inv = transform.inverse()
    for polygon in geoms:
        cols, rows = inv.apply(polygon[0][:, 0], polygon[0][:, 1])
        if cols.max() > 0 and cols.min() < width and rows.max() > 0 and rows.min() < height:
            return geoms
    raise InputError(
        f"the reference water file {path.name} does not overlap the scene: give one that covers it"
    )

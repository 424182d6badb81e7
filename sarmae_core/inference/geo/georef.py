"""Georeference without a GIS library: affine grid transforms and CRS handles.

The engine works with these two plain types whichever IO backend reads and writes the files
(:mod:`~sarmae_core.inference.io.raster_io`): :class:`Transform` is the six GDAL geotransform
coefficients in ``affine``'s order, :class:`Crs` a CRS as WKT with the few facts the engine
asks of it, made and reprojected by the backend that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Transform(NamedTuple):
    """Pixel (col, row) to map (x, y): ``x = a col + b row + c``, ``y = d col + e row + f``.

    The coefficients and their order are ``affine.Affine``'s, so ``Affine(*t)`` and
    ``Transform(*affine)`` convert either way (an ``Affine`` has nine items; the last three,
    ``0, 0, 1``, are dropped by :meth:`of`).
    """

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    @classmethod
    def of(cls, value: Any) -> Transform:
        """A transform from anything with six or nine coefficients in ``affine``'s order."""
        return cls(*(float(v) for v in tuple(value)[:6]))

    @classmethod
    def identity(cls) -> Transform:
        return cls(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    @classmethod
    def translation(cls, x: float, y: float) -> Transform:
        return cls(1.0, 0.0, float(x), 0.0, 1.0, float(y))

    @classmethod
    def scale(cls, sx: float, sy: float) -> Transform:
        return cls(float(sx), 0.0, 0.0, 0.0, float(sy), 0.0)

    @classmethod
    def from_origin(cls, west: float, north: float, xsize: float, ysize: float) -> Transform:
        return cls(float(xsize), 0.0, float(west), 0.0, -float(ysize), float(north))

    @classmethod
    def from_gdal(cls, gt: tuple[float, ...]) -> Transform:
        c, a, b, f, d, e = gt
        return cls(a, b, c, d, e, f)

    def to_gdal(self) -> tuple[float, ...]:
        return self.c, self.a, self.b, self.f, self.d, self.e

    def apply(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Map pixel coordinates (scalars or arrays)."""
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f

    def then(self, u: Transform) -> Transform:
        """``self`` after ``u`` (``self @ u`` in affine 3, ``self * u`` in affine 2)."""
        t = self
        return Transform(
            t.a * u.a + t.b * u.d, t.a * u.b + t.b * u.e, t.a * u.c + t.b * u.f + t.c,
            t.d * u.a + t.e * u.d, t.d * u.b + t.e * u.e, t.d * u.c + t.e * u.f + t.f,
        )  # fmt: skip

    def inverse(self) -> Transform:
        det = self.a * self.e - self.b * self.d
        if det == 0:
            raise ValueError(f"transform {tuple(self)} cannot be inverted")
        a, b, d, e = self.e / det, -self.b / det, -self.d / det, self.a / det
        return Transform(a, b, -(a * self.c + b * self.f), d, e, -(d * self.c + e * self.f))


@dataclass(frozen=True, eq=False)
class Crs:
    """A coordinate reference system as the engine needs it.

    Made only by an IO backend (``parse_crs``), which keeps its own object in ``native``;
    coordinates are reprojected by that backend (``RasterIO.transform_xy``), which the engine
    passes along itself: the value does not carry it.

    Attributes:
        wkt: the CRS as WKT.
        epsg: its EPSG code when it has one.
        is_geographic: coordinates in degrees of longitude and latitude.
        metres_per_unit: length of one coordinate unit for projected CRSs (1 for metres).
    """

    wkt: str
    epsg: int | None
    is_geographic: bool
    metres_per_unit: float
    native: Any = field(repr=False)

    def to_string(self) -> str:
        """``EPSG:<code>`` when there is one, else WKT (rasterio's ``CRS.to_string``)."""
        return f"EPSG:{self.epsg}" if self.epsg is not None else self.wkt

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Crs):
            return NotImplemented
        if self.epsg is not None or other.epsg is not None:
            return self.epsg == other.epsg
        return self.wkt == other.wkt

    def __hash__(self) -> int:
        return hash(self.epsg if self.epsg is not None else self.wkt)

"""How to run a model over a scene: one typed, validated set of options.

``predict`` takes its settings as keywords (``predict(scene, "water", tile=256)``) or as one
:class:`RunOptions` (``predict(scene, "water", options=opts)``); either way they become a
``RunOptions``, checked once when it is made. The CLI, the QGIS dock, Processing and
``predict_many`` build this same object, so a setting means one thing and is refused with one
sentence wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: How ship boxes are drawn: around the bright hull under a detection, or as the model says.
BOXES = ("hull", "model")


@dataclass(frozen=True)
class RunOptions:
    """Everything ``predict`` takes besides the scene, the model and where to write.

    Attributes:
        before: the scene before the event, for a two-date (flood) model.
        reference_water: flood runs: water of normal times (a raster, nonzero = water, or a
            vector file of polygons), never counted as flood; with a one-date (water) model
            and no before scene, flood is the water mapped minus this.
        hand: flood runs: a HAND raster (height above nearest drainage, m); pixels above
            ``hand_threshold_m`` (default 15 m, as HydroSAR) are excluded.
        dem: flood runs: a DEM (m); radar shadow and layover found from its slopes, the after
            scene's orbit direction and ``incidence_deg`` (default 39, Sentinel-1 IW mid-swath)
            are excluded.
        aoi: area of interest: ``(xmin, ymin, xmax, ymax)`` in ``aoi_crs``, GeoJSON polygons,
            or a vector file of polygons.
        aoi_crs: CRS of a box or GeoJSON ``aoi`` (default: the raster's).
        tile, overlap: tile side and overlap in pixels (default: the model's).
        batch_size: tiles per model call; on a CPU at most as many as hold 0.5 Mpx (8 tiles
            of 256 px, 2 of 512 px, 1 of 768 px: :data:`.predict.CPU_BATCH_PIXELS`).
        backend: ``auto``, ``onnxruntime`` or ``torch``.
        device: ``auto``, ``cuda`` or ``cpu``.
        units: input units (``db``, ``intensity``, ``amplitude``, ``complex``); default: the
            file's metadata, else guessed (and said).
        bands: band name or 1-based index for each model channel; default: by polarisation.
        products: any of ``class``, ``probability``, ``vector``.
        job: ``water``, ``ships`` or ``flood``: insist on the matching model task.
        threshold: foreground probability or detection confidence; default: the model's.
        boxes: ships: ``hull`` (default) redraws each learned model's box around the bright
            hull under it (its own box runs short on long ships); ``model`` keeps the
            model's box. CFAR boxes are its detected pixels either way.
        min_area_m2, fill_holes_m2, simplify_m: polygon cleaning (m2, m2, m).
        cog: write Cloud-Optimized GeoTIFFs.
        quicklook: also write a PNG of the scene with the results over it.
        overwrite: replace existing outputs (never a file the run reads).
        force: run even when the work looks absurd or may not fit disk or memory.
        allow_optical: run on an image that looks optical (8-bit RGB).
        resolution_tolerance: relative pixel-size mismatch tolerated before the input is
            resampled to the model's resolution.
        io_backend: the library that reads and writes files: ``gdal``, ``rasterio`` or
            ``auto`` (default, or ``$SARMAE_IO``: GDAL's bindings when they import).

    Raises:
        ConfigError: a value of the wrong type or out of range, naming the option.
    """

    before: str | os.PathLike[str] | None = None
    reference_water: str | os.PathLike[str] | None = None
    hand: str | os.PathLike[str] | None = None
    hand_threshold_m: float = 15.0
    dem: str | os.PathLike[str] | None = None
    incidence_deg: float = 39.0
    aoi: Any = None
    aoi_crs: str | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    backend: str = "auto"
    device: str = "auto"
    units: str | None = None
    bands: Sequence[str | int] | None = None
    products: Sequence[str] | None = None
    job: str | None = None
    threshold: float | None = None
    boxes: str = "hull"
    min_area_m2: float = 0.0
    fill_holes_m2: float = 0.0
    simplify_m: float = 0.0
    cog: bool = False
    quicklook: str | os.PathLike[str] | None = None
    overwrite: bool = False
    force: bool = False
    allow_optical: bool = False
    resolution_tolerance: float = 0.25
    io_backend: str | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("before", "reference_water", "hand", "dem"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"{name} must be a path (str or Path), got {value!r}")
        _number("hand_threshold_m", self.hand_threshold_m, minimum=0.0)
        _number("incidence_deg", self.incidence_deg, minimum=0.0)
        if not 10.0 <= float(self.incidence_deg) <= 70.0:
            raise ConfigError(
                f"incidence_deg must lie between 10 and 70 degrees (Sentinel-1 IW: 29-46), got "
                f"{self.incidence_deg!r}"
            )
        for name in ("tile", "overlap"):
            _integer(name, getattr(self, name), minimum=1 if name == "tile" else 0, optional=True)
        _integer("batch_size", self.batch_size, minimum=1)
        threshold = self.threshold
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, Real):
                raise ConfigError(f"threshold must be a number, got {threshold!r}")
            if not 0.0 < float(threshold) < 1.0:  # NaN fails this too
                raise ConfigError(
                    f"threshold must lie strictly between 0 and 1 (a probability or "
                    f"confidence), got {threshold!r}; leave it unset for the model's own"
                )
        for name in ("min_area_m2", "simplify_m"):
            _number(name, getattr(self, name), minimum=0.0)
        # ``inf`` is the documented way to fill every hole; NaN or a negative area means nothing.
        _number("fill_holes_m2", self.fill_holes_m2, minimum=0.0, allow_inf=True)
        _number("resolution_tolerance", self.resolution_tolerance, minimum=0.0)
        bands = self.bands
        if bands is not None:
            if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
                raise ConfigError(
                    f"bands must be a list with one band name or 1-based index per model "
                    f"channel, e.g. ['VV'] or [1], got {bands!r}"
                )
            for b in bands:
                if isinstance(b, bool) or not isinstance(b, (str, Integral)):
                    raise ConfigError(
                        f"bands holds {b!r}: each band is a name (str) or an int index"
                    )
            object.__setattr__(self, "bands", tuple(bands))
        products = self.products
        if isinstance(products, (str, bytes)) or not isinstance(products, (Sequence, type(None))):
            raise ConfigError(
                f"products must be a list such as ['class', 'vector'], got {products!r}"
            )
        if products is not None:
            object.__setattr__(self, "products", tuple(products))
        for name in ("units", "aoi_crs", "job", "backend", "device", "io_backend"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        if self.boxes not in BOXES:
            raise ConfigError(f"boxes must be one of {', '.join(BOXES)}, got {self.boxes!r}")
        for name in ("cog", "overwrite", "allow_optical", "force"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        quicklook = self.quicklook
        if quicklook is not None and not isinstance(quicklook, (str, os.PathLike)):
            raise ConfigError(f"quicklook must be a path (.png), got {quicklook!r}")
        if quicklook is not None and Path(quicklook).suffix.lower() != ".png":
            raise ConfigError(f"the quicklook {Path(quicklook).name!r} must end in .png")

    @classmethod
    def of(cls, options: RunOptions | None = None, **settings: Any) -> RunOptions:
        """``options`` with ``settings`` on top (or ``RunOptions(**settings)``); an unknown
        setting is refused with the names that exist."""
        unknown = sorted(set(settings) - NAMES)
        if unknown:
            raise ConfigError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"the options are {', '.join(sorted(NAMES))}"
            )
        if options is None:
            return cls(**settings)
        if not isinstance(options, RunOptions):
            raise ConfigError(f"options must be a RunOptions, got {type(options).__name__}")
        return dataclasses.replace(options, **settings) if settings else options

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults (what a caller set)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }

    def as_dict(self) -> dict[str, Any]:
        """Every option by name (tuples as lists): for manifests and logs."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }


#: The option names.
NAMES = frozenset(f.name for f in dataclasses.fields(RunOptions))


def check_paths(raster: Any, output: Any, options: RunOptions) -> None:
    """The scene, the output and the before scene: paths, and not the same scene twice.

    Raises:
        ConfigError: naming the argument.
    """
    if not isinstance(raster, (str, os.PathLike)):
        raise ConfigError(f"raster must be a path (str or Path), got {raster!r}")
    if options.before is not None and os.fspath(options.before) == os.fspath(raster):
        raise ConfigError("before and after are the same file: give the scene before the event")
    if output is not None and not isinstance(output, (str, os.PathLike, Mapping)):
        raise ConfigError(f"output must be a path or a {{product: path}} dict, got {output!r}")


def _integer(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def _number(name: str, value: Any, minimum: float | None = None, allow_inf: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not (allow_inf and v > 0)):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and v < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}")

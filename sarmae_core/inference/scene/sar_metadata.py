"""What a raster says about itself as SAR data: polarisation of each band, units, optical or not.

The order of trust is: what the user said, then what the file says (band descriptions and tags,
units, SNAP band names such as ``Sigma0_VV_db``, Sentinel-1 and pyroSAR file names), then a
heuristic that names what it assumed. Nothing here reads more than a small sample of pixels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..notes import Notes

#: Units a source raster may be in: the model units plus complex SLC samples.
SOURCE_UNITS = ("db", "intensity", "amplitude", "complex")

_POL = re.compile(r"(?:^|[^a-z])(vv|vh|hh|hv)(?:$|[^a-z])")
#: Sentinel-1 SAFE measurement TIFFs, e.g. s1a-iw-grd-vv-20150309t173017-...-001.tiff: GRD
#: products store amplitude digital numbers (uint16), SLC products complex samples.
_S1_MEASUREMENT = re.compile(r"^s1[a-d]-[a-z0-9]+-(grd|slc)-(vv|vh|hh|hv)-")
_POL_KEYS = ("polarisation", "polarization", "pol", "polarisations")
_UNIT_WORDS = {
    "db": ("db", "decibel", "decibels"),
    "amplitude": ("amplitude", "dn"),
    "intensity": ("intensity", "linear", "power"),
}
#: Share of negative sample values above which data cannot be intensity or amplitude.
_NEGATIVE_SHARE = 0.01


@dataclass(frozen=True)
class Channel:
    """How one model input channel is made from raster bands.

    Attributes:
        name: the model's name for the channel (e.g. ``VV`` or ``VV-VH``).
        bands: 1-based raster band indexes it reads (two for a derived ratio channel).
    """

    name: str
    bands: tuple[int, ...]


def polarisation_of(text: str | None) -> str | None:
    """``VV``/``VH``/``HH``/``HV`` named in a band description, tag or file name, if exactly one."""
    if not text:
        return None
    found = set(_POL.findall(text.lower()))
    return found.pop().upper() if len(found) == 1 else None


def band_polarisations(ds, path: Path) -> list[str | None]:
    """Polarisation of each band from its tags, then its description, then the file name.

    The file name is used only for single-band files (pyroSAR and SNAP write one file per
    polarisation, Sentinel-1 SAFE one measurement TIFF per polarisation). ``ds`` needs only
    ``count``, ``descriptions`` and ``tags(band)``, so the QGIS plugin maps a layer's bands by
    this same rule.
    """
    names: list[str | None] = []
    for i in range(1, ds.count + 1):
        tags = {k.lower(): v for k, v in ds.tags(i).items()}
        tag = next((tags[k] for k in _POL_KEYS if k in tags), None)
        names.append(polarisation_of(tag) or polarisation_of(ds.descriptions[i - 1]))
    if ds.count == 1 and names[0] is None:
        names[0] = polarisation_of(path.stem)
    return names


def map_bands(
    wanted: Sequence[str],
    names: Sequence[str | None],
    explicit: Sequence[str | int] | None,
    notes: Notes,
) -> list[Channel]:
    """Pick the raster band (or bands) that feed each model channel.

    Args:
        wanted: the model's channel names, e.g. ``["VV", "VH"]``.
        names: polarisation of each raster band (None where unknown).
        explicit: user's choice, one per channel: a band name or a 1-based index.
        notes: receives the assumption when bands are taken in file order.

    Raises:
        InputError: a channel the raster cannot provide, naming what it has.
    """
    count = len(names)
    have = ", ".join(f"{i + 1}: {n or 'unnamed'}" for i, n in enumerate(names))
    upper = [n.upper() if n else None for n in names]
    if explicit is not None:
        if len(explicit) != len(wanted):
            raise InputError(
                f"the model takes {len(wanted)} bands ({', '.join(wanted)}) but {len(explicit)} "
                f"were given ({list(explicit)}); raster bands are [{have}]"
            )
        channels = []
        for name, choice in zip(wanted, explicit, strict=True):
            if isinstance(choice, (int, np.integer)):
                if not 1 <= choice <= count:
                    raise InputError(f"band {choice} does not exist; raster bands are [{have}]")
                channels.append(Channel(name, (int(choice),)))
            elif str(choice).upper() in upper:
                channels.append(Channel(name, (upper.index(str(choice).upper()) + 1,)))
            else:
                raise InputError(f"no band named {choice!r}; raster bands are [{have}]")
        return channels

    channels = []
    for name in wanted:
        key = name.upper()
        parts = re.split(r"[-/]", key)
        if key in upper:
            channels.append(Channel(name, (upper.index(key) + 1,)))
        elif len(parts) == 2 and all(p in upper for p in parts):  # derived ratio, e.g. VV-VH
            channels.append(Channel(name, tuple(upper.index(p) + 1 for p in parts)))
        else:
            break
    else:
        return channels
    if count == len(wanted) and not any(names):
        notes.warn(
            f"the raster's bands have no polarisation names; assumed bands "
            f"{', '.join(f'{i + 1}={n}' for i, n in enumerate(wanted))} (pass bands=[...] "
            "to choose)"
        )
        return [Channel(n, (i + 1,)) for i, n in enumerate(wanted)]
    raise InputError(
        f"the model needs bands {', '.join(wanted)} but the raster has [{have}]; "
        "pass bands=[...] with a band name or 1-based index for each"
    )


def looks_optical(ds) -> bool:
    """Three or more bands coloured red/green/blue, or 8-bit: an optical picture, not SAR.

    8-bit SAR products exist but are quick-looks, never calibrated backscatter. ``ds`` needs
    only ``count``, ``colorinterp`` and ``dtypes`` (:class:`.raster_io.Raster`'s names), so the
    QGIS plugin applies this rule to what it read of a layer.
    """
    return ds.count >= 3 and (
        set(ds.colorinterp[:3]) == {"red", "green", "blue"}
        or all(dt == "uint8" for dt in ds.dtypes[:3])
    )


def check_not_optical(ds, allow_optical: bool) -> None:
    """Refuse what looks like an optical image (:func:`looks_optical`).

    Raises:
        InputError: unless ``allow_optical``.
    """
    if looks_optical(ds) and not allow_optical:
        raise InputError(
            f"the raster looks like an optical image ({ds.count} bands, {ds.dtypes[0]}, "
            f"colours {', '.join(ds.colorinterp)}), not SAR backscatter; "
            "SAR models give meaningless results on it. If it really is SAR, pass "
            "allow_optical=True (--allow-optical) and choose bands=[...]"
        )


def units_from_metadata(ds, path: Path, bands: Sequence[int]) -> tuple[str, str] | None:
    """Units stated by the file: ``(units, where it was found)``, or None.

    Looks at the data type (complex), band units, descriptions and tags, SNAP-style band names
    (``Sigma0_VV_db``), then the file name (``..._db.tif``; Sentinel-1 GRD measurement TIFFs).
    """
    b = bands[0]
    if ds.dtypes[b - 1].startswith("complex"):
        return "complex", f"the data type ({ds.dtypes[b - 1]})"
    texts = [
        ("band units", ds.units[b - 1]),
        ("band description", ds.descriptions[b - 1]),
        *(
            (f"band tag {k}", v)
            for k, v in ds.tags(b).items()
            if k.lower() in ("units", "unit", "unittype", "scale", "measurement")
        ),
    ]
    for where, text in texts:
        if not text:
            continue
        tokens = set(re.split(r"[^a-z0-9]+", text.lower()))
        for units, words in _UNIT_WORDS.items():
            if tokens & set(words):
                return units, f"the {where} {text!r}"
        if where == "band description" and text.lower().startswith(("sigma0", "gamma0", "beta0")):
            return "intensity", f"the SNAP band name {text!r} (calibrated, linear)"
    stem = path.stem.lower()
    match = _S1_MEASUREMENT.match(stem)
    if match and match.group(1) == "grd":
        return "amplitude", "the Sentinel-1 GRD file name (amplitude digital numbers)"
    tokens = set(re.split(r"[^a-z0-9]+", stem))
    for units, words in _UNIT_WORDS.items():
        if tokens & set(words) - {"dn"}:
            return units, f"the file name {path.name!r}"
    return None


def decide_units(
    explicit: str | None,
    stated: tuple[str, str] | None,
    sample: np.ndarray,
    dtype: str,
    notes: Notes,
) -> str:
    """Units of the input: explicit, else stated by the file, else guessed from values; values
    far outside the physical range of those units are refused (see :func:`_decide_units`)."""
    units = _decide_units(explicit, stated, sample, dtype, notes)
    if units == "db" and sample.size and not np.iscomplexobj(sample):
        problem = _db_range_problem(sample, dtype)
        if problem and explicit is None:
            raise InputError(problem)
        if problem:  # the user insisted on dB: run, but say what the values look like
            notes.warn(problem)
    return units


def _db_range_problem(sample: np.ndarray, dtype: str) -> str | None:
    """What is wrong with dB values no radar measures: typically scaled integers (dB x 100
    in int16); None when they look like backscatter.

    Backscatter lies within about -60 dB (noise floor) and +40 dB (corner reflectors); a scene
    whose typical value (median of magnitudes) is beyond 100 is stored scaled, and read as dB
    it would turn every pixel into water (or into land).
    """
    values = np.asarray(sample, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    typical = float(np.median(np.abs(values)))
    if typical <= _DB_LIMIT:
        return None
    lo, hi = np.percentile(values, [1, 99])
    scale = 10 ** round(np.log10(typical / 12.0))  # typical SAR backscatter: about -12 dB
    return (
        f"values from {lo:g} to {hi:g} (typical {typical:g}) cannot be dB backscatter, which "
        f"lies within about -60 to +40 dB; {dtype} data like these usually hold dB x {scale:g}: "
        f"divide by {scale:g} first (gdal_calc.py --calc=A/{scale:g} --type=Float32), or give "
        "the right units"
    )


#: Typical magnitude of dB samples above which values are not backscatter in dB.
_DB_LIMIT = 100.0


def _decide_units(
    explicit: str | None,
    stated: tuple[str, str] | None,
    sample: np.ndarray,
    dtype: str,
    notes: Notes,
) -> str:
    """Units of the input: explicit, else stated by the file, else guessed from values.

    Args:
        explicit: units the user gave, or None.
        stated: result of :func:`units_from_metadata`.
        sample: valid sample values of the bands the model reads (any shape).
        dtype: raster data type.
        notes: receives what was assumed.

    Raises:
        InputError: unknown units, values that contradict the units, or units that cannot be
            told from the data.
    """
    if explicit is not None and explicit.lower() not in SOURCE_UNITS:
        raise InputError(
            f"unknown units {explicit!r}: use one of {', '.join(SOURCE_UNITS)} "
            "(dB is 10 log10 of intensity; amplitude is its square root)"
        )
    # Complex samples have negative real parts half of the time: that says nothing.
    real = sample.size > 0 and not np.iscomplexobj(sample)
    negative = float(np.mean(sample < 0)) if real else 0.0
    if explicit is not None:
        units = explicit.lower()
        source = "you said so"
    elif stated is not None:
        units, source = stated
        notes.info(f"input units: {units} (from {source})")
    elif negative > _NEGATIVE_SHARE:
        notes.warn(
            f"the raster does not say its units; assumed dB because {negative:.0%} of the "
            "sampled values are negative (pass units='db' to confirm, or the right units)"
        )
        return "db"
    elif dtype.startswith(("uint", "int")):
        notes.warn(
            f"the raster does not say its units; assumed amplitude because its values are "
            f"non-negative {dtype} integers, as in Sentinel-1 GRD digital numbers "
            "(pass units= to confirm)"
        )
        return "amplitude"
    else:
        raise InputError(
            "cannot tell the units of the raster: its values are non-negative, so it may be "
            "linear intensity or amplitude, and the file does not say. Pass units='intensity' "
            "or units='amplitude' (or 'db')"
        )
    if units in ("intensity", "amplitude") and negative > _NEGATIVE_SHARE:
        raise InputError(
            f"the raster is said to be {units} ({source}) but {negative:.0%} of its values are "
            "negative, which linear units cannot be; it is probably in dB: pass units='db'"
        )
    return units

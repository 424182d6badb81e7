"""The rules ``predict`` checks its arguments and its work against, before any work.

One place for them: the CLI, the QGIS plugin and Processing pass their values through
``predict``, which calls these; none keeps a copy. Each refusal names the parameter, what it
got and what it takes, so a script's author can fix the call without reading the source.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, RasterError, SarmaeError

#: Pixels a run may sweep (at the model's grid) or read (at the input's) without ``force``:
#: about 25 Sentinel-1 IW GRD scenes at 10 m. Beyond that, a declared size is far likelier a
#: mistake (a VRT with a wrong size, a pixel size in the wrong unit) than a scene.
MAX_PIXELS = 10_000_000_000
#: Share of the physical memory the row band of the blender may take without ``force``.
MAX_MEMORY_SHARE = 0.5
#: Bytes per output pixel of each raster product before compression (the vector product
#: needs the uint8 foreground mask as scratch).
_BYTES_PER_PIXEL = {"class": 1, "probability": 4, "vector": 1}


def check_args(values: Mapping[str, Any]) -> None:
    """Refuse arguments of the wrong type or outside their range, naming the parameter.

    Raises:
        ConfigError: the first wrong value found.
    """
    raster = values["raster"]
    if not isinstance(raster, (str, os.PathLike)):
        raise ConfigError(f"raster must be a path (str or Path), got {raster!r}")
    before = values.get("before")
    if before is not None and not isinstance(before, (str, os.PathLike)):
        raise ConfigError(f"before must be a path (str or Path), got {before!r}")
    if before is not None and os.fspath(before) == os.fspath(raster):
        raise ConfigError("before and after are the same file: give the scene before the event")
    for name in ("tile", "overlap"):
        _integer(name, values[name], minimum=1 if name == "tile" else 0, optional=True)
    _integer("batch_size", values["batch_size"], minimum=1)
    threshold = values["threshold"]
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, Real):
            raise ConfigError(f"threshold must be a number, got {threshold!r}")
        if not 0.0 < float(threshold) < 1.0:  # NaN fails this too
            raise ConfigError(
                f"threshold must lie strictly between 0 and 1 (a probability or confidence), "
                f"got {threshold!r}; leave it unset for the model's own"
            )
    for name in ("min_area_m2", "simplify_m"):
        _number(name, values[name], minimum=0.0)
    # ``inf`` is the documented way to fill every hole; NaN or a negative area means nothing.
    _number("fill_holes_m2", values["fill_holes_m2"], minimum=0.0, allow_inf=True)
    _number("resolution_tolerance", values["resolution_tolerance"], minimum=0.0)
    bands = values["bands"]
    if bands is not None:
        if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
            raise ConfigError(
                f"bands must be a list with one band name or 1-based index per model channel, "
                f"e.g. ['VV'] or [1], got {bands!r}"
            )
        for b in bands:
            if isinstance(b, bool) or not isinstance(b, (str, Integral)):
                raise ConfigError(f"bands holds {b!r}: each band is a name (str) or an int index")
    products = values["products"]
    if isinstance(products, (str, bytes)) or not isinstance(products, (Sequence, type(None))):
        raise ConfigError(f"products must be a list such as ['class', 'vector'], got {products!r}")
    for name in ("units", "aoi_crs", "job"):
        if values[name] is not None and not isinstance(values[name], str):
            raise ConfigError(f"{name} must be a string, got {values[name]!r}")
    for name in ("cog", "overwrite", "allow_optical", "force"):
        if not isinstance(values[name], bool):
            raise ConfigError(f"{name} must be True or False, got {values[name]!r}")
    output = values["output"]
    if output is not None and not isinstance(output, (str, os.PathLike, Mapping)):
        raise ConfigError(f"output must be a path or a {{product: path}} dict, got {output!r}")
    quicklook = values["quicklook"]
    if quicklook is not None and not isinstance(quicklook, (str, os.PathLike)):
        raise ConfigError(f"quicklook must be a path (.png), got {quicklook!r}")
    if quicklook is not None and Path(quicklook).suffix.lower() != ".png":
        raise ConfigError(f"the quicklook {Path(quicklook).name!r} must end in .png")


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


def check_work(
    read_px: tuple[int, int],
    input_px: tuple[int, int],
    out_px: tuple[int, int],
    products: Sequence[str],
    band_bytes: int,
    folders: Sequence[Path],
    force: bool,
) -> int:
    """Refuse a run whose size is absurd or cannot fit the disk or memory, with the numbers.

    Args:
        read_px: (height, width) swept at the model's grid.
        input_px: (height, width) of the input pixels read for it.
        out_px: (height, width) of the raster outputs (the input's grid).
        products: the products planned.
        band_bytes: memory of the blender's band of rows.
        folders: output folders.
        force: skip the refusals (the caller knows better).

    Returns:
        The bytes the raster outputs may take before compression.

    Raises:
        InputError: too many pixels, or a memory need beyond the machine's.
        RasterError: outputs larger than the free space of their folder.
    """
    h, w = out_px
    need = sum(_BYTES_PER_PIXEL.get(p, 0) for p in products) * h * w
    if force:
        return need
    way_out = "pass an area of interest (aoi=..., --aoi) to process part of it, or force=True "
    way_out += "(--force) if you are sure"
    for what, (h, w) in (("at the model's resolution", read_px), ("of input read", input_px)):
        if h * w > MAX_PIXELS:
            raise InputError(
                f"the run would process {w:,} x {h:,} px {what} ({h * w / 1e9:,.1f} Gpx), over "
                f"the {MAX_PIXELS / 1e9:g} Gpx a run takes: is the raster's size or pixel size "
                f"right? If so, {way_out}"
            )
    total = _physical_memory()
    if total and band_bytes > MAX_MEMORY_SHARE * total:
        raise InputError(
            f"the run needs about {band_bytes / 2**30:,.1f} GiB of memory for a band of "
            f"{out_px[1]:,} px wide rows, more than half of this machine's "
            f"{total / 2**30:,.1f} GiB; {way_out}"
        )
    for folder in folders:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        if need > free:
            raise RasterError(
                f"not enough space on {folder}: the outputs need up to {need / 1e6:,.0f} MB "
                f"(uncompressed) and {free / 1e6:,.0f} MB are free; free some space, write "
                f"elsewhere, or {way_out}"
            )
    return need


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


#: How the libraries say that a disk is full: OS errors, GDAL, SQLite (GeoPackages).
_DISK_FULL = ("no space left on device", "database or disk is full", "disk full")
#: Free bytes under which a failed write is taken to be a full disk.
_NEARLY_FULL = 1 << 20


def _free(folder: Path) -> float:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return math.inf


def disk_full(exc: BaseException, folders: Sequence[Path], need_bytes: int) -> RasterError | None:
    """A clear error for ``exc`` if it says that a disk is full, else None (our own errors,
    already clear, stay as they are)."""
    if isinstance(exc, SarmaeError):
        return None
    texts = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 5:
        texts.append(str(seen).lower())
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            texts.append("no space left on device")
        seen = seen.__cause__ or seen.__context__
    full = any(marker in t for t in texts for marker in _DISK_FULL)
    # GDAL often reports a failed write only as "write error" or "I/O error": a folder with
    # next to no space left tells what it was.
    if not full and not any(_free(f) < _NEARLY_FULL for f in folders):
        return None
    where = ", ".join(str(f) for f in folders)
    return RasterError(
        f"no space left on {where}: the outputs needed about {max(1, need_bytes // 10**6):,} MB "
        "(uncompressed, less once compressed); free some space or write elsewhere. Nothing "
        "was written"
    )

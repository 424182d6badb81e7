"""The rules ``predict`` checks its work against, before any work: its size against the
disk and memory, and a full disk named as such. (Its options are checked where they are
made: :class:`.options.RunOptions`.)

One place for them: the CLI, the QGIS plugin and Processing pass their values through
``predict``, which calls these; none keeps a copy. Each refusal names the numbers and a way
out, so a script's author can fix the call without reading the source.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, RasterError, SarmaeError

#: Pixels a run may sweep (at the model's grid) or read (at the input's) without ``force``:
#: about 25 Sentinel-1 IW GRD scenes at 10 m. Beyond that, a declared size is far likelier a
#: mistake (a VRT with a wrong size, a pixel size in the wrong unit) than a scene.
MAX_PIXELS = 10_000_000_000
#: Share of the physical memory the row band of the blender may take without ``force``.
MAX_MEMORY_SHARE = 0.5
#: Bytes per output pixel of each raster product before compression (the vector product
#: needs the uint8 foreground mask as scratch).
_BYTES_PER_PIXEL = {"class": 1, "probability": 4, "vector": 1}


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

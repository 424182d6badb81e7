"""Atomic, streamed outputs: tiled compressed GeoTIFFs (COG on request) with overviews.

Every file is written under a temporary name beside its final path and renamed into place only
when the whole run has succeeded (``os.replace`` is atomic on one file system); a failed or
cancelled run removes its temporary files, so a run leaves either finished outputs or nothing,
and never touches an existing file it was not allowed to replace.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import OutputExistsError, RasterError
from .georef import Crs, Transform
from .raster_io import RasterSpec, overview_factors

#: Side of GeoTIFF blocks; the blender hands out rows in multiples of it.
BLOCK = 256
#: GDAL may add these beside a file it writes.
_SIDECARS = (".aux.xml", ".ovr", "-journal", "-wal", "-shm")


class OutputSet:
    """Final paths of a run's products, their temporary twins, commit and rollback.

    Args:
        paths: final path of each product (``class``, ``probability``, ``vector``).
        overwrite: replace existing files.

    Raises:
        OutputExistsError: a file exists and ``overwrite`` is False.
        RasterError: a folder that does not exist or cannot be written to.
    """

    def __init__(self, paths: dict[str, Path], overwrite: bool = False) -> None:
        self.paths = {k: Path(v).absolute() for k, v in paths.items()}
        self._temps: dict[str, Path] = {}
        self._scratch: list[Path] = []
        for path in self.paths.values():
            if path.exists() and not overwrite:
                raise OutputExistsError(
                    f"output {path} exists; pass overwrite=True (--overwrite) to replace it, "
                    "or choose another name"
                )
            if path.is_dir():
                raise RasterError(f"output {path} is a folder; give a file name")
            _check_writable(path.parent)

    def temp(self, key: str) -> Path:
        """Temporary path for product ``key``, renamed to its final path by :meth:`commit`.

        Asking again for the same product (e.g. for its COG copy) makes the earlier temporary
        file scratch, deleted when the run ends.
        """
        if key in self._temps:
            self._scratch.append(self._temps[key])
        final = self.paths[key]
        tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.part{final.suffix}")
        self._temps[key] = tmp
        return tmp

    def scratch(self, name: str) -> Path:
        """A temporary file deleted when the run ends, whatever happens."""
        folder = next(iter(self.paths.values())).parent
        path = folder / f".{name}.{uuid.uuid4().hex[:8]}.scratch{Path(name).suffix}"
        self._scratch.append(path)
        return path

    def commit(self) -> dict[str, Path]:
        """Move every temporary file to its final path; returns the final paths."""
        for key, tmp in self._temps.items():
            os.replace(tmp, self.paths[key])
            for side in _SIDECARS:
                _unlink(Path(f"{tmp}{side}"))
        self._clean(self._scratch)
        return dict(self.paths)

    def rollback(self) -> None:
        """Remove everything this run wrote."""
        self._clean([*self._temps.values(), *self._scratch])

    @staticmethod
    def _clean(paths: list[Path]) -> None:
        for path in paths:
            _unlink(path)
            for side in _SIDECARS:
                _unlink(Path(f"{path}{side}"))


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # best effort: never hide the error that caused the rollback


def _check_writable(folder: Path) -> None:
    if not folder.is_dir():
        raise RasterError(f"output folder {folder} does not exist; create it first")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".sarmae-write-test-")
    except OSError as exc:
        raise RasterError(
            f"output folder {folder} is not writable ({exc.strerror}); choose another folder"
        ) from exc
    os.close(fd)
    os.unlink(probe)


class GeoTiffWriter:
    """A tiled, compressed GeoTIFF filled by row chunks, then given overviews.

    Args:
        io: the IO backend that writes it.
        path: file to write (a temporary path from :class:`OutputSet`).
        width, height, count, dtype: raster shape and type.
        crs, transform, nodata: georeference (``crs`` None for pixel-space rasters).
        descriptions: band descriptions.
        overview_resampling: ``nearest`` for classes, ``average`` for probabilities.
        colormap: colour of each value of band 1 (a class map).
        tags: dataset metadata.
    """

    def __init__(
        self,
        io: ModuleType,
        path: Path,
        width: int,
        height: int,
        count: int,
        dtype: str,
        crs: Crs | None,
        transform: Transform,
        nodata: float | None,
        descriptions: Sequence[str] = (),
        overview_resampling: str = "nearest",
        colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.io = io
        self.path = path
        self.width, self.height = width, height
        self.overview_resampling = overview_resampling
        options = {
            "TILED": "YES",
            "BLOCKXSIZE": str(BLOCK),
            "BLOCKYSIZE": str(BLOCK),
            "COMPRESS": "DEFLATE",
            # Horizontal differencing: 2 for integers, 3 (floating point) for float32.
            "PREDICTOR": "3" if np.dtype(dtype).kind == "f" else "2",
            "BIGTIFF": "IF_SAFER",
        }
        spec = RasterSpec(width, height, count, dtype, crs, transform, nodata, options,
                          list(descriptions), colormap, dict(tags or {}))  # fmt: skip
        self._ds = io.create_geotiff(path, spec)

    def write(self, row: int, values: np.ndarray) -> None:
        """Write ``values`` [count, rows, width] starting at ``row``."""
        self._ds.write(row, values)

    def close(self) -> None:
        self._ds.close()

    def finish(self) -> None:
        """Close, then add internal overviews down to about one block."""
        self.close()
        factors = overview_factors(self.width, self.height, BLOCK)
        if factors:
            self.io.build_overviews(self.path, factors, self.overview_resampling)

    def to_cog(self, dst: Path) -> None:
        """Copy the finished file (with its overviews) to a Cloud-Optimized GeoTIFF."""
        self.io.to_cog(
            self.path,
            dst,
            {
                "COMPRESS": "DEFLATE",
                "BLOCKSIZE": str(BLOCK),
                "OVERVIEW_RESAMPLING": self.overview_resampling.upper(),
                "BIGTIFF": "IF_SAFER",
            },
        )

"""Checks made before a run starts, so that a wrong input is refused with a sentence, not a
traceback, and before any file is written (Deepness #128, GeoDeep #10: hidden assumptions
about CRS and band count).

Works on :class:`RasterFacts` (plain data read from the layer and its file), so every rule is
testable without QGIS. The rules themselves are sarmae_core's (optical or not, polarisation of
each band, band mapping, which model does which job), applied to the facts, so the plugin and
the engine never disagree about what a band is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core import core
from .params import JOB_TITLE


class InputRefused(ValueError):
    """An input or setting the plugin will not run on; the message says what to do."""


@dataclass(frozen=True)
class RasterFacts:
    """What the plugin knows about a raster layer before running on it.

    Attributes:
        name: layer name.
        path: what GDAL opens.
        provider: QGIS data provider (``gdal`` for files).
        georeferenced: the file has a CRS, or GCPs with one (the layer's CRS in QGIS may be
            one QGIS assumed; the engine reads the file).
        band_count: number of bands.
        descriptions: GDAL band descriptions.
        data_types: GDAL data type names (``Byte``, ``Float32``, ...).
        colours: GDAL colour interpretation names, lower case (``red``, ``gray``, ...).
        pixel_size_m: ground pixel size (x, y) in metres (None: unknown, no CRS).
        band_tags: GDAL metadata of each band (e.g. ``POLARISATION``).

    It also answers as the engine's view of an open raster (``count``, ``dtypes``,
    ``colorinterp``, ``descriptions``, ``tags(band)`` of
    :class:`sarmae_core.inference.io.raster_io.Raster`), so the engine's rules take it as they are.
    """

    name: str
    path: str
    provider: str
    georeferenced: bool
    band_count: int
    descriptions: tuple[str, ...]
    data_types: tuple[str, ...]
    colours: tuple[str, ...]
    pixel_size_m: tuple[float, float] | None = None
    band_tags: tuple[Mapping[str, str], ...] = ()

    @property
    def count(self) -> int:
        return self.band_count

    @property
    def dtypes(self) -> tuple[str, ...]:
        """Data types by the engine's names (``uint8`` for GDAL's ``Byte``)."""
        return tuple(map(core("inference.io.gdal_io").dtype_name, self.data_types))

    @property
    def colorinterp(self) -> tuple[str, ...]:
        return self.colours

    def tags(self, band: int) -> dict[str, str]:
        """GDAL metadata of 1-based ``band`` (empty when not read)."""
        return dict(self.band_tags[band - 1]) if band <= len(self.band_tags) else {}


def check_raster(facts: RasterFacts) -> None:
    """Refuse layers that no SAR model can be run on.

    Raises:
        InputRefused: not a GDAL file raster, an optical image, or no georeference.
    """
    if facts.provider != "gdal":
        raise InputRefused(
            f"'{facts.name}' is not a raster file GDAL reads (provider {facts.provider}); "
            "save it as a GeoTIFF (Export ▸ Save As…) and run on that"
        )
    if core("inference.scene.sar_metadata").looks_optical(facts):
        colours = "/".join(c.title() for c in facts.colours[:3])
        raise InputRefused(
            f"'{facts.name}' looks like an optical RGB image ({facts.band_count} bands, "
            f"{facts.data_types[0]}, colours {colours}), not SAR backscatter. SARMAE models "
            "read radar backscatter; on an optical image their results mean nothing. Choose a "
            "SAR layer, e.g. a Sentinel-1 GRD band in dB or linear sigma0"
        )
    if not facts.georeferenced:
        raise InputRefused(
            f"'{facts.name}' has no coordinate reference system in its file, so the results "
            "could not be placed on the map and areas and ship sizes could not be measured. "
            "Assign a CRS to the file (Raster ▸ Projections ▸ Assign Projection) or use a "
            "terrain-corrected (geocoded) product"
        )


def band_polarisations(facts: RasterFacts) -> list[str | None]:
    """Polarisation of each band as ``predict`` reads it: tags, then description, then (a
    single band) the file name
    (:func:`sarmae_core.inference.scene.sar_metadata.band_polarisations`)."""
    return core("inference.scene.sar_metadata").band_polarisations(facts, Path(facts.path))


def default_bands(facts: RasterFacts, polarisations: Sequence[str]) -> list[int | None]:
    """Band suggested for each model channel: the one named after it, else None."""
    names = [n.upper() if n else None for n in band_polarisations(facts)]
    out: list[int | None] = []
    for pol in polarisations:
        out.append(names.index(pol.upper()) + 1 if pol.upper() in names else None)
    if all(b is None for b in out) and facts.band_count == len(polarisations) == 1:
        out = [1]  # one band, one channel: nothing else it could be
    return out


def check_bands(
    facts: RasterFacts, polarisations: Sequence[str], bands: Sequence[int | str] | None
) -> None:
    """Refuse a band choice the model cannot take (count, range, or unnamed bands).

    Raises:
        InputRefused: naming the bands the raster has.
    """
    sar = core("inference.scene.sar_metadata")
    errors = core("errors")
    try:
        sar.map_bands(
            list(polarisations),
            band_polarisations(facts),
            None if bands is None else list(bands),
            core("inference.notes").Notes(),
        )
    except errors.InputError as exc:
        raise InputRefused(f"'{facts.name}': {exc}") from exc


def check_resolution(facts: RasterFacts, info: object) -> None:
    """Refuse a ship model on pixels much coarser than it was trained for (the engine's rule,
    :func:`sarmae_core.inference.scene.source.resolution_refusal`), before the run starts.

    Raises:
        InputRefused: saying which pixel sizes the model is for and what to use instead.
    """
    if facts.pixel_size_m is None:
        return
    reason = core("inference.scene.source").resolution_refusal(*facts.pixel_size_m, info)
    if reason:
        raise InputRefused(f"'{facts.name}': {reason}")


def check_task(task: str, job: str, model_label: str) -> None:
    """Refuse a model that does not do the job (a ship detector for Segment water), by the
    engine's rule (:func:`sarmae_core.inference.predict.check_task`).

    Raises:
        InputRefused: naming the model's task.
    """
    predict = core("inference.predict")
    try:
        predict.check_task(task, job, model_label)
    except core("errors").ConfigError as exc:
        raise InputRefused(
            f"{JOB_TITLE[job]} needs a {predict.JOBS[job]} model, but {model_label} is a {task} "
            "model; choose another model or the other button"
        ) from exc


def check_scenes(
    info: Any,
    job: str,
    after: RasterFacts,
    before: RasterFacts | None,
    bands: Any,
    label: str,
) -> None:
    """The model's dates against the layers given (:func:`check_dates`), and each scene's bands
    against the channels it gives the model (a two-date model reads the same bands on each).

    Raises:
        InputRefused: what to choose instead.
    """
    check_dates(info, job, before, label)
    read = core("inference.scene.source").date_info(info, "after") if info.dates else info
    for scene in (after, before):
        if scene is not None:
            check_bands(scene, read.polarisations, bands)


def check_dates(info: Any, job: str, before: Any, model_label: str) -> None:
    """Refuse a single-date model for Map flood and a two-date model elsewhere, by the engine's
    rule (:func:`sarmae_core.inference.predict.check_dates`).

    Raises:
        InputRefused: saying which model or button to use.
    """
    predict = core("inference.predict")
    try:
        predict.check_dates(info, job, getattr(before, "path", before), model_label)
    except core("errors").ConfigError as exc:
        if info.dates:
            raise InputRefused(
                f"{model_label} maps flood between two dates: use Map flood, with the scene "
                "before the event under Input ▸ Before"
            ) from exc
        raise InputRefused(
            f"{JOB_TITLE[job]} needs a two-date (flood) model, but {model_label} maps one "
            "date; choose the bundled flood model or a two-date model file, or give reference "
            "water"
        ) from exc

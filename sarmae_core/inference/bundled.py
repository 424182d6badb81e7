"""Which bundled model a job uses on a scene: the variant that reads the most of its bands.

``predict(scene, model="water")`` (and the QGIS plugin's bundled Water model) runs the VV+VH
model when the scene has both a VV and a VH band, else the VV model: cross-polarised VH adds what
VV alone misses (rough wind-blown water stays dark in VH; see the VV+VH model card), and a user
should not need to know that a second model exists. Naming the bands (``bands=["VV"]``) keeps
the VV model. Numpy and the raster IO backend only: the plugin runs this too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ..errors import SarmaeError
from .notes import Notes

#: The bundled models of a job by the polarisations they read, preferred first.
VARIANTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "water": (("water_vvvh", ("VV", "VH")), ("water", ("VV",))),
}


def bundled_variant(
    job: str,
    polarisations: Sequence[str | None],
    bands: Sequence[str | int] | None,
    folder: Path,
) -> str:
    """Name of the bundled model of ``job`` for a raster whose bands have ``polarisations``.

    Args:
        job: ``water`` or ``ships`` (a job without variants gets its own name back).
        polarisations: polarisation of each raster band (None where unknown).
        bands: the user's band choice, one per model channel, or None: with a choice, the
            variant with that many channels is used.
        folder: where the bundled ``.onnx`` files are (variants not installed are passed over).
    """
    have = {p.upper() for p in polarisations if p}
    for name, wanted in VARIANTS.get(job, ()):
        if not (folder / f"{name}.onnx").is_file():
            continue
        fits = len(bands) == len(wanted) if bands is not None else set(wanted) <= have
        if fits:
            return name
    return job


def bundled_for_raster(
    job: str,
    raster: str | os.PathLike,
    bands: Sequence[str | int] | None,
    folder: Path,
    io: ModuleType | None = None,
    notes: Notes | None = None,
) -> str:
    """:func:`bundled_variant` for the bands of ``raster`` (metadata only, no pixels read).

    A raster that cannot be opened gets the job's default model: the run then reports the
    problem with the raster itself.
    """
    from .sar_metadata import band_polarisations
    from .source import open_dataset

    if job not in VARIANTS:
        return job
    try:
        ds = open_dataset(raster, io)
    except SarmaeError:
        return job
    try:
        names = band_polarisations(ds, Path(os.fspath(raster)))
    finally:
        ds.close()
    name = bundled_variant(job, names, bands, folder)
    if name != job and notes is not None:
        pols = "+".join(dict(VARIANTS[job])[name])
        notes.info(
            f"the scene has {pols} bands: using the bundled {name} model ({pols}); "
            f"bands=['VV'] keeps the VV model"
        )
    return name

"""Which bundled model a job uses on a scene.

``predict(scene, model="water")`` (and the QGIS plugin's bundled Water model) runs a variant
that reads more bands only where held-out evidence says it is better on every held-out set we
have (``VARIANTS``'s ``automatic``). The VV+VH water model is not: on an unseen ETCI scene it
scored water IoU 15.2 against the VV model's 27.3 (issue #10's measurements), although it led
on ETCI Nebraska. So a VV+VH scene gets the VV model and a note naming the VV+VH one; it runs
when asked for by name (``model="water_vvvh"``) or by naming two bands
(``bands=["VV", "VH"]``). Numpy and the raster IO backend only: the plugin runs this too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ...errors import SarmaeError
from ..io.raster_io import RasterIO
from ..notes import Notes

#: The bundled models of a job: (name, polarisations read, chosen automatically when the
#: scene has those bands), preferred first. Automatic only with held-out evidence (see above).
VARIANTS: dict[str, tuple[tuple[str, tuple[str, ...], bool], ...]] = {
    "water": (("water_vvvh", ("VV", "VH"), False), ("water", ("VV",), True)),
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
    for name, wanted, automatic in VARIANTS.get(job, ()):
        if not (folder / f"{name}.onnx").is_file():
            continue
        fits = (
            len(bands) == len(wanted) if bands is not None else (automatic and set(wanted) <= have)
        )
        if fits:
            return name
    return job


def other_variants(job: str, polarisations: Sequence[str | None], folder: Path) -> list[str]:
    """Installed variants of ``job`` that fit the bands but are not chosen automatically."""
    have = {p.upper() for p in polarisations if p}
    return [
        name
        for name, wanted, automatic in VARIANTS.get(job, ())
        if not automatic and set(wanted) <= have and (folder / f"{name}.onnx").is_file()
    ]


def bundled_for_raster(
    job: str,
    raster: str | os.PathLike,
    bands: Sequence[str | int] | None,
    folder: Path,
    fileio: RasterIO | None = None,
    notes: Notes | None = None,
) -> str:
    """:func:`bundled_variant` for the bands of ``raster`` (metadata only, no pixels read).

    A raster that cannot be opened gets the job's default model: the run then reports the
    problem with the raster itself.
    """
    from ..scene.sar_metadata import band_polarisations
    from ..scene.source import open_dataset

    if job not in VARIANTS:
        return job
    try:
        ds = open_dataset(raster, fileio)
    except SarmaeError:
        return job
    try:
        names = band_polarisations(ds, Path(os.fspath(raster)))
    finally:
        ds.close()
    name = bundled_variant(job, names, bands, folder)
    if notes is not None:
        reads = {n: "+".join(w) for n, w, _ in VARIANTS[job]}
        if name != job:
            notes.info(f"using the bundled {name} model ({reads[name]}), as the bands ask")
        elif bands is None:
            for other in other_variants(job, names, folder):
                notes.info(
                    f"the scene also has the bands of the bundled {other} model "
                    f"({reads[other]}); the {job} model ({reads[job]}) is the default, being "
                    f"better on held-out scenes; model='{other}' runs the other"
                )
    return name

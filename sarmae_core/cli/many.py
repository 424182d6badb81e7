"""``sarmae predict water|ships SCENES -o OUTDIR``: many scenes on Dask (:mod:`..inference.many`).

Reached from the ``predict`` subcommands when SCENES is a folder, a glob pattern, a ``.txt``
list or a STAC ``.json`` (:func:`~sarmae_core.inference.batch.scenes.is_many`), or when
``--workers`` or ``--scheduler`` is given; a single raster keeps the single-scene command.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError

#: The options that name one scene's files: each scene's are named in OUTDIR instead.
_ONE_FILE = {"raster": "--raster", "probability": "--probability", "quicklook": "--quicklook"}


def run_many(job: str, scenes: Path, output: Path | None, named: dict[str, Any], quiet: bool,
             **kw: Any) -> None:  # fmt: skip
    """Run ``job`` over the scenes; print the dashboard, a bar of scenes and each failure."""
    from ..inference.many import predict_many

    if output is None or output.suffix.lower() == ".gpkg":
        raise ConfigError(
            "many scenes write into a folder: give it as -o OUTDIR (each scene's outputs are "
            "named after it there, with catalogue.gpkg and catalogue.csv)"
        )
    given = [_ONE_FILE[k] for k, v in named.items() if v is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)} names one file; with many scenes each scene's files are named "
            "in OUTDIR: leave it out (predict_many(products=..., quicklook=True) writes them)"
        )
    sink = io.StringIO() if quiet else None
    state: dict[str, Any] = {}

    def on_cluster(link: str | None) -> None:
        if link and not quiet:
            click.echo(f"Dask dashboard: {link}", err=True)

    def progress(done: int, total: int, record: dict[str, Any] | None) -> None:
        if record is None:  # the cluster is up: the bar of the scenes to run
            bar = click.progressbar(length=total, label=f"{job}: scenes", file=sink,
                                    show_pos=True)  # fmt: skip
            state["bar"] = bar.__enter__()
            return
        state["bar"].update(1)

    workers, scheduler, threads = kw.pop("workers"), kw.pop("scheduler"), kw.pop("threads")
    try:
        result = predict_many(
            scenes, output, kw.pop("model"), job=job, workers=workers, scheduler=scheduler,
            threads=threads, asset=kw.pop("asset"), overwrite=kw.pop("overwrite"),
            progress=progress, on_cluster=on_cluster, **kw,
        )  # fmt: skip
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
    click.echo(str(result))
    if result.of("failed"):
        n, total = len(result.of("failed")), len(result.scenes)
        raise ConfigError(
            f"{n} of {total} scenes failed (listed above and in catalogue.csv); fix them and "
            "run the same command again: finished scenes are skipped"
        )

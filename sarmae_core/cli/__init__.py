"""The ``sarmae`` command: one click group, one small module per subcommand.

Exit codes: 0 success, 1 unexpected failure, 2 bad input or usage (the message says what to do),
130 cancelled.
"""

from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..errors import CancelledError, SarmaeError

log = logging.getLogger("sarmae")


class SarmaeGroup(click.Group):
    """Turns our own errors into one readable line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CancelledError as exc:
            click.echo(f"cancelled: {exc}", err=True)
            ctx.exit(130)
        except (SarmaeError, FileExistsError, FileNotFoundError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=SarmaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sarmae")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def main(verbose: int, quiet: bool) -> None:
    """SAR foundation models (SARMAE): water and ship maps from SAR rasters."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if not quiet and verbose == 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from . import export, info, predict, presets

    for command in (predict.predict, export.export, info.info, presets.presets):
        main.add_command(command)


_register()

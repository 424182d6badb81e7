"""The ``sarmae`` command: one click group, one small module per subcommand.

Exit codes: 0 success, 1 unexpected failure, 2 bad input or usage (the message says what to do),
130 cancelled (Ctrl-C), 143 terminated (SIGTERM). A cancelled or terminated run removes what it
had started writing, as any failed run does.
"""

from __future__ import annotations

import logging
import signal
import sys

import click

from .. import __version__
from ..errors import CancelledError, SarmaeError
from ..extras import missing_extra_message

log = logging.getLogger("sarmae")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service stopping, ``timeout``, ``kill``), raised where the run is.

    A KeyboardInterrupt like Ctrl-C, so that every ``except BaseException`` clean-up that
    removes a run's temporary files runs for it too.
    """


def _on_sigterm(signum: int, _frame: object) -> None:
    raise Terminated()


class SarmaeGroup(click.Group):
    """Turns our own errors into one readable line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (an embedding application): its own rules
            previous = None
        try:
            return super().invoke(ctx)
        except Terminated:
            click.echo("cancelled: terminated (SIGTERM); nothing was written", err=True)
            ctx.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            click.echo("cancelled: interrupted (Ctrl-C); nothing was written", err=True)
            ctx.exit(130)
        except CancelledError as exc:
            click.echo(f"cancelled: {exc}", err=True)
            ctx.exit(130)
        except (SarmaeError, FileExistsError, FileNotFoundError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except ModuleNotFoundError as exc:  # torch & co. come with an extra: say which
            message = missing_extra_message(exc.name or "", f"`sarmae {ctx.invoked_subcommand}`")
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def log_level(default: int, verbose: int, quiet: bool) -> int:
    """The logging level of ``sarmae`` and ``sarmae-train`` alike: ``-v`` one level more per
    ``v`` (down to debug), ``-q`` errors only; ``default`` is each command's own."""
    return logging.ERROR if quiet else max(logging.DEBUG, default - 10 * verbose)


#: The verbosity options, one meaning in both commands.
verbose_option = click.option(
    "-v", "--verbose", count=True, help="More log output (repeat for more: -vv is debug)."
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="Errors only.")


@click.group(cls=SarmaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sarmae")
@verbose_option
@quiet_option
def main(verbose: int, quiet: bool) -> None:
    """SAR foundation models (SARMAE): water and ship maps from SAR rasters."""
    level = log_level(logging.WARNING, verbose, quiet)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from . import export, info, predict, presets

    for command in (predict.predict, export.export, info.info, presets.presets):
        main.add_command(command)


_register()

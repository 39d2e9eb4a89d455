"""The ``polystore`` command line (also ``python -m polystore``).

Commands: ``ls``, ``info``, ``cp``, ``view``, ``serve``, ``bench``; each has
``--help``. Exit codes: 0 success, 1 failure, 2 usage error (130 when
interrupted). Errors are printed as one line; ``polystore --debug CMD ...``
(or ``POLYSTORE_DEBUG=1``) prints the traceback instead.

This package imports click; ``import polystore`` never imports it.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from polystore.cli._common import STATE, describe, one_line
from polystore.cli.bench import bench
from polystore.cli.cp import cp
from polystore.cli.info import info
from polystore.cli.ls import ls
from polystore.cli.serve import serve
from polystore.cli.view import view

__all__ = ["main", "cli"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Print the full traceback when a command fails.")
@click.version_option(package_name="polystore", prog_name="polystore", message="%(prog)s %(version)s")
def cli(debug: bool) -> None:
    """One storage API for scientific Python: disk, memory, zarr/OME-Zarr, napari, Fiji.

    \b
    Examples:
      polystore ls plate.zarr -r
      polystore info plate.zarr/A01
      polystore cp tiffs/ plate.zarr            # a folder of TIFFs -> one OME-Zarr store
      polystore cp plate.zarr tiffs-again/      # and back
      polystore view plate.zarr
      polystore serve napari
    """
    STATE.debug = STATE.debug or debug


for _command in (ls, info, cp, view, serve, bench):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    STATE.debug = os.environ.get("POLYSTORE_DEBUG", "") not in ("", "0")
    try:
        result = cli.main(args=args, prog_name="polystore", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "polystore"
        click.echo(f"{where}: usage error: {one_line(exc.format_message())} (see '{where} --help')", err=True)
        return 2
    except click.Abort:
        click.echo("polystore: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        if STATE.debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        click.echo(f"polystore: error: {one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("polystore: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one readable line
        if STATE.debug:
            traceback.print_exc()
        else:
            click.echo(f"polystore: error: {describe(exc)}", err=True)
        return 1
    if isinstance(result, int):
        return result
    return 0

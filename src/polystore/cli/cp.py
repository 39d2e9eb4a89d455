"""``polystore cp``: convert between backends and formats, resumably.

The command line of :func:`polystore.tree_copy.copy_tree` (``FileManager.copy_tree``),
whose docstring gives the rules: never a half-written target, resumable by
running the same command again.
"""

from __future__ import annotations

import click

from polystore.tree_copy import JOURNAL_NAME, CopyOptionError

__all__ = ["cp", "JOURNAL_NAME"]


@click.command("cp")
@click.argument("src")
@click.argument("dst")
@click.option("--to", type=click.Choice(["zarr", "disk"]), default=None,
              help="Destination backend (default: zarr if DST ends in .zarr, else disk).")
@click.option("--format", "fmt", type=click.Choice(["tif", "npy"]), default=None,
              help="File format for --to disk (default: tif from zarr, the source's from disk).")
@click.option("--compressor", type=click.Choice(["lz4", "zstd", "none"]), default=None,
              help="Compression for --to zarr (default: lz4, level 1).")
@click.option("--axes", default=None,
              help="Axes of every image, e.g. zyx (default: from the file, else yx/zyx/czyx/tczyx by ndim).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--plate/--no-plate", default=None,
              help="A folder of ImageXpress or Opera/Operetta TIFFs -> one HCS plate (default: when every file "
                   "is named like one; --plate: refuse other folders).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the copy as tasks on the dask.distributed scheduler at ADDRESS (tcp://host:8786).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run the copy as tasks on a local cluster of N worker processes.")
def cp(src: str, dst: str, to: str | None, fmt: str | None, compressor: str | None, axes: str | None,
       progress: bool | None, plate: bool | None, scheduler: str | None, workers: int | None) -> None:
    """Copy SRC to DST, converting between backends and formats.

    \b
    polystore cp tiffs/ plate.zarr         folder of .tif/.npy -> one OME-Zarr store
    polystore cp plate.zarr tiffs2/        store -> folder of .tif (pixel-exact)
    polystore cp plate.zarr npys/ --format npy
    polystore cp a.tif a.zarr              one file -> one array/image
    polystore cp plate.zarr small.zarr --compressor zstd
    polystore cp ixm_export/ plate.zarr    ImageXpress/Opera TIFFs -> one HCS plate
    polystore cp tiffs/ plate.zarr --workers 4       one task per file, 4 processes
    polystore cp tiffs/ plate.zarr --scheduler tcp://host:8786   on a cluster

    Run it again to resume: finished, verified items are skipped. A new DST
    appears only when complete (until then: a hidden .DST.cp-partial sibling).
    """
    from polystore import FileManager

    if scheduler and workers:
        raise click.BadParameter("give --scheduler or --workers, not both", param_hint="'--workers'")
    client = None
    try:
        if scheduler or workers:
            from polystore.cluster_copy import cluster_client
            from polystore.exceptions import MissingDependencyError

            try:
                client = cluster_client(scheduler, workers)
            except MissingDependencyError as exc:
                raise click.ClickException(str(exc)) from exc
        result = FileManager().copy_tree(src, dst, to=to, fmt=fmt, compressor=compressor, axes=axes,
                                         progress=progress, plate=plate, client=client)
    except CopyOptionError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'--{exc.option}'") from exc
    except KeyboardInterrupt as exc:
        for note in getattr(exc, "__notes__", ()):
            click.echo(f"polystore cp: {note}", err=True)
        raise
    finally:
        if client is not None:
            client.close()
            cluster = getattr(client, "_polystore_cluster", None)
            if cluster is not None:
                cluster.close()
    click.echo(f"copied {result.copied}, skipped {result.skipped} (complete and verified) -> {result.destination}")



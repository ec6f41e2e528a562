"""The typer application: global options, and one sub-app or command per noun."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from accelctl import __version__
from accelctl.cli._context import AppContext
from accelctl.cli._errors import AccelGroup

app = typer.Typer(
    cls=AccelGroup,
    name="accelctl",
    help="Find, check, address, reset and talk to ML accelerator cards on PCIe.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"accelctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    sysfs_root: Annotated[
        Optional[Path],
        typer.Option(
            "--sysfs-root",
            envvar="ACCELCTL_SYSFS_ROOT",
            help="Read this directory instead of /sys (a fixture, snapshot or copy).",
            show_default=False,
        ),
    ] = None,
    fixture: Annotated[
        Optional[str],
        typer.Option(
            "--fixture",
            envvar="ACCELCTL_FIXTURE",
            help="Use a bundled fixture (see 'accelctl fixture list'), built on demand.",
        ),
    ] = None,
    accel_id: Annotated[
        Optional[list[str]],
        typer.Option(
            "--accel-id",
            help="Also count vvvv:dddd (or vvvv:*) as an accelerator. Repeatable; "
            "$ACCELCTL_ACCEL_IDS adds more.",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="ACCELCTL_DEBUG", help="Show tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = AppContext(
        sysfs_root=sysfs_root, fixture=fixture, accel_ids=list(accel_id or []), debug=debug
    )


def _register() -> None:
    """One line per noun. Modules are imported here, not at the top, to keep `import accelctl` and
    `accelctl --help` cheap; heavy work inside commands is imported lazily by each command."""
    from accelctl.cli import (
        addr_cmd,
        admin,
        bench,
        diag_cmd,
        fixture_cmd,
        io,
        list_cmd,
        matrix_cmd,  # noqa: F401 - registers `topology matrix` on topology_cmd.app
        metrics_cmd,
        reset_cmd,
        sim,
        snapshot_cmd,
        topology_cmd,
        watch_cmd,
    )

    app.command("list")(list_cmd.list_command)
    app.add_typer(topology_cmd.app, name="topology")
    app.add_typer(addr_cmd.app, name="addr")
    app.command("diag")(diag_cmd.diag_command)
    app.command("metrics")(metrics_cmd.metrics_command)
    app.command("snapshot")(snapshot_cmd.snapshot_command)
    app.command("reset")(reset_cmd.reset_command)
    app.command("watch")(watch_cmd.watch_command)
    app.add_typer(admin.app, name="admin")
    app.add_typer(io.app, name="io")
    app.add_typer(bench.app, name="bench")
    app.add_typer(sim.app, name="sim")
    app.add_typer(fixture_cmd.app, name="fixture")


_register()

"""The typer application: global options, and one sub-app or command per noun."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from accelctl import __version__
from accelctl.cli import _complete
from accelctl.cli._context import AppContext
from accelctl.cli._group import AccelGroup

_app = typer.Typer(
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


@_app.callback()
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
            autocompletion=_complete.fixture_names,
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
    sysfs_root, fixture = _choose_tree(ctx, sysfs_root, fixture)
    ctx.obj = AppContext(
        sysfs_root=sysfs_root, fixture=fixture, accel_ids=list(accel_id or []), debug=debug
    )


def _choose_tree(
    ctx: typer.Context, sysfs_root: Optional[Path], fixture: Optional[str]
) -> tuple[Optional[Path], Optional[str]]:
    """--fixture or --sysfs-root. A flag beats an environment variable (as in gh and kubectl):
    `ACCELCTL_FIXTURE=x accelctl --sysfs-root DIR` reads DIR. Only two flags, or two variables
    and no flag, contradict each other (usage error, exit 2)."""
    def from_flag(name: str) -> bool:
        return getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"

    if sysfs_root is None or fixture is None:
        return sysfs_root, fixture
    root_flag, fixture_flag = from_flag("sysfs_root"), from_flag("fixture")
    if root_flag and not fixture_flag:
        return sysfs_root, None
    if fixture_flag and not root_flag:
        return None, fixture
    if root_flag:
        raise typer.BadParameter(
            "give either --fixture or --sysfs-root, not both", param_hint="'--fixture' / '--sysfs-root'"
        )
    raise typer.BadParameter(
        "both $ACCELCTL_SYSFS_ROOT and $ACCELCTL_FIXTURE are set: unset one, or choose with "
        "--sysfs-root or --fixture", param_hint="'--fixture' / '--sysfs-root'",
    )


#: Every command: name -> (module under accelctl.cli, attribute, "command" or "group").
#: `topology matrix` registers itself on the topology group when matrix_cmd is imported.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("list_cmd", "list_command", "command"),
    "topology": ("topology_cmd", "app", "group"),
    "addr": ("addr_cmd", "app", "group"),
    "diag": ("diag_cmd", "diag_command", "command"),
    "metrics": ("metrics_cmd", "metrics_command", "command"),
    "snapshot": ("snapshot_cmd", "snapshot_command", "command"),
    "reset": ("reset_cmd", "reset_command", "command"),
    "watch": ("watch_cmd", "watch_command", "command"),
    "admin": ("admin", "app", "group"),
    "io": ("io", "app", "group"),
    "bench": ("bench", "app", "group"),
    "sim": ("sim", "app", "group"),
    "fixture": ("fixture_cmd", "app", "group"),
    "k8s": ("k8s_cmd", "app", "group"),
}
#: Global options that take a value (to find the command word in argv).
_VALUE_OPTIONS: frozenset[str] = frozenset({"--sysfs-root", "--fixture", "--accel-id"})


def _register(only: str | None = None) -> None:
    """Add the commands to the app: all of them, or just `only`.

    typer inspects the signature of every registered command on each run (tens of ms for the
    whole CLI), and scripts call accelctl in loops, so a run that names its command registers
    only that one. Help, completion and unknown words get everything.
    """
    import importlib

    for name, (module_name, attr, kind) in COMMANDS.items():
        if (only is not None and name != only) or name in _registered:
            continue
        _registered.add(name)
        module = importlib.import_module(f"accelctl.cli.{module_name}")
        if name == "topology":
            importlib.import_module("accelctl.cli.matrix_cmd")
        target = getattr(module, attr)
        if kind == "group":
            _app.add_typer(target, name=name)
        else:
            _app.command(name)(target)


def command_word(argv: list[str]) -> str | None:
    """The command named on a command line (after the global options), if it is a known one."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUE_OPTIONS:
            next(args, None)
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help") or arg.startswith(("--show-completion", "--install-completion")):
                return None
            continue
        return arg if arg in COMMANDS else None
    return None


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The app with the commands `argv` needs (all when argv is None)."""
    import os

    if os.environ.get("_ACCELCTL_COMPLETE"):
        argv = None  # shell completion walks the whole tree
    _register(command_word(argv) if argv is not None else None)
    return _app


_registered: set[str] = set()


def __getattr__(name: str) -> typer.Typer:
    # `from accelctl.cli.app import app` (tests, CliRunner, embedding) gets the complete CLI.
    if name == "app":
        return build_app()
    raise AttributeError(name)

"""The command-line interface. Only this package imports typer and rich."""

from __future__ import annotations


def main() -> None:
    import sys

    from accelctl.cli.app import build_app

    build_app(sys.argv[1:])(prog_name="accelctl")

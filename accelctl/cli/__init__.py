"""The command-line interface. Only this package imports typer and rich."""

from __future__ import annotations


def main() -> None:
    from accelctl.cli.app import app

    app(prog_name="accelctl")

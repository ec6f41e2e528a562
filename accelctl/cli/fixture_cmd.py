"""`accelctl fixture`: build sysfs trees from topology specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt

app = typer.Typer(help="Build fake sysfs trees from topology specs (fixtures/*.toml).")


@app.command("build")
def build(
    spec: Annotated[Path, typer.Argument(
        help="A topology spec (TOML), or a bundled fixture name when no file of that name exists.")],
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the tree into.")],
) -> None:
    """Write a complete sysfs tree for SPEC into OUT_DIR (use it with --sysfs-root OUT_DIR)."""
    from accelctl.sim.fixture import build_fixture, spec_path_for

    root = build_fixture(spec_path_for(spec), out_dir, progress=out.progress_reporter())
    out.err_console().print(f"built {out.esc(root)}")


@app.command("list")
def list_fixtures(json: JsonOpt = False) -> None:
    """The bundled fixtures and what each one is (use with --fixture NAME)."""
    from accelctl.sim.fixture import describe_bundled_fixtures

    fixtures = describe_bundled_fixtures()
    if json:
        out.emit_json({"fixtures": [{"name": name, "description": text} for name, text in fixtures]})
    else:
        from accelctl.cli._layout import Column, fit_table, terminal_width

        # the name is typed back (--fixture NAME): never cut; the description wraps at a terminal
        rows = [[out.esc(name), out.esc(text)] for name, text in fixtures]
        table = fit_table([Column("NAME"), Column("DESCRIPTION", identifier=False)], rows, terminal_width()).table
        out.console().print(table)

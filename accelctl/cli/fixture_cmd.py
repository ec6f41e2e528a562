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
    spec: Annotated[Path, typer.Argument(help="A topology spec (TOML) or a bundled fixture name.")],
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the tree into.")],
) -> None:
    """Write a complete sysfs tree for SPEC into OUT_DIR (use it with --sysfs-root OUT_DIR)."""
    from accelctl.sim.fixture import build_fixture

    root = build_fixture(spec, out_dir)
    out.err_console().print(f"built {out.esc(root)}")


@app.command("list")
def list_fixtures(json: JsonOpt = False) -> None:
    """Names of the bundled fixtures (use with --fixture NAME)."""
    from accelctl.sim.fixture import list_bundled_fixtures

    names = list_bundled_fixtures()
    if json:
        out.emit_json({"schema_version": 1, "fixtures": names})
    else:
        out.emit_text("\n".join(names))

"""`accelctl topology`: the annotated tree, or JSON / GraphML / DOT."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt

app = typer.Typer(help="The PCIe tree: host bridges, ports, switches, endpoints, cards.")


class Format(str, enum.Enum):
    tree = "tree"
    json = "json"
    graphml = "graphml"
    dot = "dot"


@app.callback(invoke_without_command=True)
def topology(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.tree,
    json: JsonOpt = False,
) -> None:
    """Show the PCIe tree, annotated with kinds, links (downgrades highlighted), NUMA and cards."""
    if ctx.invoked_subcommand is not None:
        return
    if json:
        fmt = Format.json
    ctx.obj.json_errors = fmt is Format.json
    topo = ctx.obj.topology()
    if fmt is Format.json:
        out.emit_json(topo.to_dict())
    elif fmt is Format.graphml:
        from accelctl.topology.export import to_graphml

        out.emit_text(to_graphml(topo))
    elif fmt is Format.dot:
        from accelctl.topology.export import to_dot

        out.emit_text(to_dot(topo))
    else:
        from accelctl.cli.render import topology_tree

        out.print_warnings(topo.warnings)
        out.console().print(topology_tree(topo))

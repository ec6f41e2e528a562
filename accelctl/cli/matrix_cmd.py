"""`accelctl topology matrix`: pairwise closeness of accelerator endpoints, and P2P."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from accelctl.cli import _output as out
from accelctl.cli import topology_cmd
from accelctl.cli._options import JsonOpt

if TYPE_CHECKING:
    from rich.table import Table

    from accelctl.diagnostics.matrix import TopologyMatrix

_STYLE = {"X": "dim", "CARD": "bold green", "PIX": "green", "PXB": "yellow", "PHB": "magenta",
          "NODE": "red", "SYS": "bold red"}
#: after the code: nothing when PCIe peer-to-peer works, '*' when it does not, '?' when unknown
_P2P_MARK = {True: "", False: "*", None: "?"}


@topology_cmd.app.command("matrix")
def matrix_command(ctx: typer.Context, json: JsonOpt = False) -> None:
    """For every pair of accelerator endpoints: X, CARD, PIX, PXB, PHB, NODE or SYS, and whether
    PCIe peer-to-peer is possible (docs/matrix.md)."""
    from accelctl.diagnostics.matrix import topology_matrix

    ctx.obj.json_errors = json
    result = topology_matrix(ctx.obj.topology())
    if json:
        out.emit_json(result.to_dict())
        return
    if not result.endpoints:
        out.err_console().print("no accelerator endpoints found: no matrix to show")
        return
    out.console().print(matrix_table(result))
    out.console().print(
        "X self, CARD same card, PIX one switch, PXB several switches, PHB host bridge, "
        "NODE same NUMA node, SYS across NUMA nodes; '*' = no PCIe peer-to-peer, '?' = unknown "
        "(the reasons: --json p2p_reason)"
    )


def matrix_table(result: TopologyMatrix) -> Table:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    table.add_column("", no_wrap=True)
    labels = [name or bdf for bdf, name in zip(result.endpoints, result.names)]
    for label in labels:
        # Columns carry a short form (card3.ep1 -> c3.1) so 16 endpoints fit a terminal; the
        # full name and BDF head each row.
        short = label.replace("card", "c").replace(".ep", ".") if label.startswith("card") else label
        table.add_column(out.esc(short), justify="center", no_wrap=True, min_width=5)
    for label, bdf, row, prow in zip(labels, result.endpoints, result.matrix, result.p2p):
        cells = [f"[{_STYLE[c]}]{c}{_P2P_MARK[ok]}[/]" for c, ok in zip(row, prow)]
        table.add_row(out.esc(f"{label} ({bdf})" if label != bdf else bdf), *cells)
    return table

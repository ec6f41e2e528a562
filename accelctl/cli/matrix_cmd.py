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
    from accelctl.cli._layout import terminal_width

    groups = matrix_tables(result, terminal_width())
    for i, (title, table) in enumerate(groups):
        if len(groups) > 1:
            out.console().print(("\n" if i else "") + title)
        out.console().print(table)
    out.console().print(
        "X self, CARD same card, PIX one switch, PXB several switches, PHB host bridge, "
        "NODE same NUMA node, SYS across NUMA nodes; '*' = no PCIe peer-to-peer, '?' = unknown "
        "(the reasons: --json p2p_reason)"
    )


#: Width of a matrix cell: the longest level and its '*' (CARD*).
CELL_WIDTH = 5


def matrix_tables(result: TopologyMatrix, width: int | None) -> list[tuple[str, Table]]:
    """The matrix as one table, or, when it is wider than the terminal, as several tables of
    as many columns as fit (every row in each), each with a title naming its columns. Nothing
    is cut: the row labels (name and BDF) and every column are shown whole."""
    from rich.table import Table

    from accelctl.cli._layout import column_groups

    labels = [name or bdf for bdf, name in zip(result.endpoints, result.names)]
    # Columns carry a short form (card3.ep1 -> c3.1); the full name and BDF head each row.
    shorts = [label.replace("card", "c").replace(".ep", ".") if label.startswith("card") else label
              for label in labels]
    row_labels = [f"{label} ({bdf})" if label != bdf else bdf for label, bdf in zip(labels, result.endpoints)]
    cell = max([CELL_WIDTH, *(len(s) for s in shorts)])
    label_width = max(len(r) for r in row_labels)
    groups = column_groups(label_width, cell, len(labels), width)
    tables = []
    for cols in groups:
        table = Table(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
        table.add_column("", no_wrap=True, min_width=label_width)
        for j in cols:
            table.add_column(out.esc(shorts[j]), justify="center", no_wrap=True, min_width=cell)
        for label, row, prow in zip(row_labels, result.matrix, result.p2p):
            table.add_row(out.esc(label), *(f"[{_STYLE[row[j]]}]{row[j]}{_P2P_MARK[prow[j]]}[/]" for j in cols))
        title = (f"columns {cols.start + 1}-{cols.stop} of {len(labels)} "
                 f"({out.esc(shorts[cols.start])} .. {out.esc(shorts[cols.stop - 1])})")
        tables.append((title, table))
    return tables

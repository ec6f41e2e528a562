"""`accelctl metrics`: Prometheus text exposition for the node_exporter textfile collector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from accelctl.cli import _output as out


def metrics_command(
    ctx: typer.Context,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write here atomically (e.g. /var/lib/node_exporter/textfile/accelctl.prom) instead of stdout."),
    ] = None,
    level: Annotated[int, typer.Option("--level", "-l", min=1, max=3, help="Diagnostic level for the finding counts.")] = 3,
) -> None:
    """Link speed/width, AER counters, card count and finding counts as Prometheus metrics."""
    from accelctl.diagnostics import run_diagnostics
    from accelctl.diagnostics.metrics import render_metrics, write_atomically

    topo = ctx.obj.topology()
    text = render_metrics(topo, run_diagnostics(topo, level=level))
    if output is None:
        out.emit_text(text)
    else:
        write_atomically(output, text)

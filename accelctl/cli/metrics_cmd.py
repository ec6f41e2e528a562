"""`accelctl metrics`: Prometheus metrics, as a file for node_exporter's textfile collector or
served over HTTP (--listen)."""

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
    listen: Annotated[
        Optional[str],
        typer.Option("--listen", help="Serve /metrics over HTTP on HOST:PORT (:PORT for all addresses) "
                     "until stopped; each scrape reads the machine afresh.", show_default=False),
    ] = None,
) -> None:
    """Links, AER counters, downtrained flags (per endpoint and root port), cards and finding
    counts as Prometheus metrics."""
    from accelctl.diagnostics import run_diagnostics

    if listen is not None:
        from accelctl.cli.serve import serve_until_stopped
        from accelctl.fleet.prometheus import MetricsServer

        machine = ctx.obj.machine()

        def snapshot():  # type: ignore[no-untyped-def]
            topo = machine.rescan()
            return topo, run_diagnostics(topo, level=level)

        def start() -> MetricsServer:
            server = MetricsServer(snapshot, listen)
            out.err_console().print(f"serving metrics on {out.esc(server.url)}")
            return server

        serve_until_stopped(start, MetricsServer.close)
        return
    from accelctl.diagnostics.metrics import render_metrics, write_atomically

    topo = ctx.obj.topology()
    text = render_metrics(topo, run_diagnostics(topo, level=level))
    if output is None:
        out.emit_text(text)
    else:
        from accelctl.cli._errors import file_error

        try:
            write_atomically(output, text)
        except OSError as err:
            raise file_error(err, output, "write") from None

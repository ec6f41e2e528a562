"""`accelctl list`: cards and their endpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt


def list_command(
    ctx: typer.Context,
    all_devices: Annotated[
        bool, typer.Option("--all", "-a", help="Every PCI function, not only accelerators.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """List accelerator cards and endpoints (BDF, model, link, NUMA, driver, serial).

    Honours ACCELCTL_VISIBLE_DEVICES (docs/addressing.md): other endpoints are hidden, names
    stay machine-wide."""
    from accelctl.addressing.visible import visible_listing

    ctx.obj.json_errors = json
    topo = ctx.obj.topology()
    listing = visible_listing(topo, include_all=all_devices)
    if json:
        out.emit_json(listing.to_dict())
        return
    from accelctl.cli._layout import terminal_width
    from accelctl.cli.render import device_table

    out.print_warnings(listing.warnings)
    if not listing.rows:
        hint = "" if all_devices else " (see every function with --all; count more as accelerators with --accel-id VVVV:DDDD)"
        what = "PCI functions" if all_devices else "accelerators"
        out.err_console().print(f"no {what} found under {out.esc(ctx.obj.root().path)}{hint}")
        return
    width = terminal_width()
    layout = device_table(topo, listing, width)
    out.console().print(layout.table)
    out.console().print(
        f"{out.count(len(listing.cards), 'card')}, {out.count(sum(len(c.endpoints) for c in listing.cards), 'endpoint')}"
    )
    if width is not None and layout.notice(width):
        out.err_console().print(out.esc(layout.notice(width)))

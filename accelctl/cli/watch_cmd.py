"""`accelctl watch`: PCI events live (udev on /sys; polling on fixtures), link and AER changes."""

from __future__ import annotations

import json as _json
import sys
import time
from typing import Annotated, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt


def watch_command(
    ctx: typer.Context,
    json: JsonOpt = False,
    interval: Annotated[
        Optional[float],
        typer.Option("--interval", "-i", min=0.05, help="Also poll link state and AER counters every S seconds."),
    ] = None,
    all_devices: Annotated[bool, typer.Option("--all", "-a", help="Every PCI function, not only accelerators.")] = False,
    count: Annotated[Optional[int], typer.Option("--count", "-n", min=1, help="Stop after N events.")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", min=0.0, help="Stop after S seconds.")] = None,
) -> None:
    """Print PCI add/remove/change/bind/unbind events (and, with --interval, link retrains and
    rising AER counters with rates) as they happen. JSON lines with --json."""
    from accelctl.watch import watch_events

    ctx.obj.json_errors = json
    stream = watch_events(ctx.obj.machine(), interval=interval, all_devices=all_devices, count=count,
                          duration=duration)
    _say_what_is_watched(stream.plan)
    for ev in stream:
        if json:
            sys.stdout.write(_json.dumps(ev.to_dict()) + "\n")
            sys.stdout.flush()
        else:
            extra = " ".join(f"{k}={v}" for k, v in ev.detail.items() if k != "accelerator")
            stamp = time.strftime("%H:%M:%S", time.localtime(ev.time))
            out.console().print(out.esc(f"{stamp} {ev.action:<7} {ev.bdf} {extra}"))


def _say_what_is_watched(plan) -> None:  # type: ignore[no-untyped-def]
    what = "function(s)" if plan.all_devices else "accelerator function(s)"
    how = "udev events" if plan.source == "udev" else f"reading the tree every {plan.interval_s:g} s"
    if plan.source == "udev" and plan.interval_s is not None:
        how += f", link and AER every {plan.interval_s:g} s"
    sys.stderr.write(f"accelctl: watching {plan.functions} {what} ({how})\n")
    sys.stderr.flush()

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
    from accelctl.watch.poll import diff_states, read_state

    ctx.obj.json_errors = json
    machine = ctx.obj.machine()
    deadline = time.monotonic() + duration if duration is not None else None
    seen = 0
    state = read_state(machine, again=False)
    accel = {b for b, f in state.functions.items() if f.accelerator}

    def emit(ev) -> bool:  # type: ignore[no-untyped-def]
        nonlocal seen
        if not all_devices and not ev.detail.get("accelerator", ev.bdf in accel):
            return False
        if json:
            sys.stdout.write(_json.dumps(ev.to_dict()) + "\n")
            sys.stdout.flush()
        else:
            extra = " ".join(f"{k}={v}" for k, v in ev.detail.items() if k != "accelerator")
            out.console().print(out.esc(f"{time.strftime('%H:%M:%S')} {ev.action:<7} {ev.bdf} {extra}"))
        seen += 1
        return count is not None and seen >= count

    def expired() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    if machine.platform.kind == "linux":
        from accelctl.watch.live import udev_events

        step = interval or 0.5
        next_poll = time.monotonic() + step
        for ev in udev_events(min(step, 0.5)):
            if ev is not None and emit(ev):
                return
            if interval is not None and time.monotonic() >= next_poll:
                new = read_state(machine)
                for e in diff_states(state, new, with_link_aer=True):
                    if e.action in ("link", "aer") and emit(e):
                        return
                state, next_poll = new, time.monotonic() + step
            if expired():
                return
    step = interval or 0.2
    while not expired():
        time.sleep(step if deadline is None else max(0.0, min(step, deadline - time.monotonic())))
        new = read_state(machine)
        for ev in diff_states(state, new, with_link_aer=interval is not None):
            if emit(ev):
                return
        state = new

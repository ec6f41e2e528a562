"""`accelctl sim serve|status|stop`: the device simulators of fixtures (docs/simulator.md)."""

from __future__ import annotations

import json as _json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt

app = typer.Typer(help="Run the device simulator (kernel driver + firmware) for a fixture.")

FixtureOpt = Annotated[
    Optional[str], typer.Option("--fixture", help="A bundled fixture (default: the global --fixture).")
]
RootOpt = Annotated[
    Optional[Path], typer.Option("--sysfs-root", help="A fixture tree (default: the global --sysfs-root).")
]


def _machine(ctx: typer.Context, fixture: str | None, sysfs_root: Path | None) -> Any:
    """The machine named here, else the global one (--accel-id applies either way)."""
    if fixture is not None or sysfs_root is not None:
        from accelctl.machine import open_machine

        return open_machine(sysfs_root=sysfs_root, fixture=fixture, accel_ids=ctx.obj.accel_ids,
                            progress=out.progress_reporter())
    return ctx.obj.machine()


def _named_machine(ctx: typer.Context, fixture: str | None, sysfs_root: Path | None) -> Any:
    """The machine named here or globally, None when none is (the live machine: no simulator)."""
    machine = _machine(ctx, fixture, sysfs_root)
    return None if machine.platform.kind != "simulator" else machine


def _simulated(ctx: typer.Context, fixture: str | None, sysfs_root: Path | None) -> Any:
    """The simulated machine named; a live /sys has no simulator (exit 5)."""
    from accelctl.errors import DriverError

    machine = _named_machine(ctx, fixture, sysfs_root)
    if machine is None:
        raise DriverError(
            "this is a live machine: there is nothing to simulate",
            hint="accelctl sim serve --fixture NAME (accelctl fixture list)",
        )
    return machine


@app.command("serve")
def serve(
    ctx: typer.Context,
    fixture: FixtureOpt = None,
    sysfs_root: RootOpt = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run in this process until Ctrl-C.")] = False,
    fault: Annotated[
        Optional[list[str]], typer.Option("--fault", help='Fault spec as JSON, e.g. \'{"kind":"drop_cqe","nth":3}\'.')
    ] = None,
    spin_us: Annotated[float, typer.Option("--spin-us", help="Device-side busy poll before sleeping.")] = 50.0,
    json: JsonOpt = False,
) -> None:
    """Serve every accelerator endpoint of the fixture until 'accelctl sim stop' (background
    unless --foreground). A simulator a command started on demand is kept running instead."""
    from accelctl.sim.service import stop_command

    ctx.obj.json_errors = json
    machine = _simulated(ctx, fixture, sysfs_root)
    faults = [_json.loads(f) for f in fault or ()]
    if foreground:
        out.err_console().print(f"serving {out.esc(machine.root.path)} (Ctrl-C to stop)")
        machine.platform.serve(faults=faults, spin_us=spin_us)
        return
    st = machine.platform.start_daemon(faults=faults, spin_us=spin_us)
    if json:
        out.emit_json({"simulators": [st.to_dict()]})
    else:
        out.emit_text(_describe(st) + f"\nstop it with: {stop_command(st.root)}")


@app.command("status")
def status(ctx: typer.Context, fixture: FixtureOpt = None, sysfs_root: RootOpt = None, json: JsonOpt = False) -> None:
    """Every running simulator: its fixture or tree, pid, who started it, idle exit, endpoints.
    With a fixture named (here or globally), exits 1 when that one is not running; else when none is."""
    from accelctl.sim import service

    ctx.obj.json_errors = json
    machine = _named_machine(ctx, fixture, sysfs_root)
    sims = service.running()
    mine = service.status(machine.root.path) if machine is not None else None
    if json:
        doc: dict[str, Any] = {"simulators": [st.to_dict() for st in sims]}
        doc["machine"] = None if mine is None else mine.to_dict()
        out.emit_json(doc)
    elif not sims:
        out.emit_text("no simulator running")
    else:
        current = mine.instance_dir if mine is not None else None
        out.emit_text("\n".join(_describe(st, current=st.instance_dir == current) for st in sims))
    if (mine is not None and not mine.running) or not sims:
        if mine is not None and sims and not json:
            out.err_console().print(f"none runs for {out.esc(machine.source.name)}")
        raise typer.Exit(1)


@app.command("stop")
def stop(
    ctx: typer.Context,
    fixture: FixtureOpt = None,
    sysfs_root: RootOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every background simulator (embedded ones are left).")] = False,
    json: JsonOpt = False,
) -> None:
    """Stop the fixture's simulator, started by 'sim serve' or on demand (a no-op when none runs)."""
    from accelctl.sim import service

    ctx.obj.json_errors = json
    if all_:
        results = service.stop_all()
        if json:
            out.emit_json({"stopped": [st.root for st, done in results if done],
                           "left": [st.to_dict() for st, done in results if not done]})
            return
        lines = [f"{'stopped' if done else 'left'}  {_name(st)}" + ("" if done else f" ({st.describe()})")
                 for st, done in results]
        out.emit_text("\n".join(lines) or "no simulator running")
        return
    machine = _named_machine(ctx, fixture, sysfs_root)
    if machine is None:
        raise typer.BadParameter("name the fixture (--fixture NAME or --sysfs-root DIR), or stop every one with --all")
    stopped = service.stop(machine.root.path)
    if json:
        out.emit_json({"stopped": stopped})
    else:
        out.emit_text("stopped" if stopped else f"not running for {machine.source.name}")


def _name(st: Any) -> str:
    return st.fixture or st.root


def _describe(st: Any, *, current: bool = False) -> str:
    """One simulator, for people: what it serves, who started it, until when, its sockets."""
    if st.started_by == "on-demand":
        life = f"on demand, exits after {st.idle_exit_s:g} s without a client"
    elif st.started_by == "serve":
        life = "served, runs until 'accelctl sim stop'"
    else:
        life = f"embedded in process {st.pid}"
    up = f", up {max(0, int(time.time() - st.started_at))} s" if st.started_at else ""
    lines = [f"{'*' if current else ' '} {_name(st)}: pid {st.pid}, {life}{up}"]
    if st.fixture:
        lines.append(f"    root {st.root}")
    lines += [f"    {bdf}  {path}" for bdf, path in sorted(st.sockets.items())]
    return "\n".join(lines)

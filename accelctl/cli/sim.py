"""`accelctl sim serve|status|stop`: the device simulator of a fixture, as a background process."""

from __future__ import annotations

import json as _json
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

        return open_machine(sysfs_root=sysfs_root, fixture=fixture, accel_ids=ctx.obj.accel_ids)
    return ctx.obj.machine()


def _simulated(ctx: typer.Context, fixture: str | None, sysfs_root: Path | None) -> Any:
    """The simulator platform of that machine; a live /sys has none (exit 5)."""
    from accelctl.errors import DriverError

    machine = _machine(ctx, fixture, sysfs_root)
    if machine.platform.kind != "simulator":
        raise DriverError(
            f"{machine.source.name} is a live machine: there is nothing to simulate",
            hint="accelctl sim serve --fixture NAME (accelctl fixture list)",
        )
    return machine.platform


def _root(ctx: typer.Context, fixture: str | None, sysfs_root: Path | None) -> Any:
    return _machine(ctx, fixture, sysfs_root).root.path


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
    """Serve every accelerator endpoint of the fixture on a Unix socket (background unless --foreground)."""
    ctx.obj.json_errors = json
    platform = _simulated(ctx, fixture, sysfs_root)
    faults = [_json.loads(f) for f in fault or ()]
    if foreground:
        out.err_console().print(f"serving {out.esc(platform.root.path)} (Ctrl-C to stop)")
        platform.serve(faults=faults, spin_us=spin_us)
        return
    _render(platform.start_daemon(faults=faults, spin_us=spin_us), json)


@app.command("status")
def status(ctx: typer.Context, fixture: FixtureOpt = None, sysfs_root: RootOpt = None, json: JsonOpt = False) -> None:
    """Whether a simulator serves the fixture, its pid and sockets. Exits 1 when none runs."""
    from accelctl.sim import service

    ctx.obj.json_errors = json
    st = service.status(_root(ctx, fixture, sysfs_root))
    _render(st, json)
    if not st.running:
        raise typer.Exit(1)


@app.command("stop")
def stop(ctx: typer.Context, fixture: FixtureOpt = None, sysfs_root: RootOpt = None, json: JsonOpt = False) -> None:
    """Stop the background simulator of the fixture (a no-op when none runs)."""
    from accelctl.sim import service

    ctx.obj.json_errors = json
    stopped = service.stop(_root(ctx, fixture, sysfs_root))
    if json:
        out.emit_json({"schema_version": 1, "stopped": stopped})
    else:
        out.emit_text("stopped" if stopped else "not running")


def _render(st: Any, json: bool) -> None:
    if json:
        out.emit_json({"schema_version": 1, **st.to_dict()})
        return
    if not st.running:
        out.emit_text(f"not running (instance dir {st.instance_dir})")
        return
    lines = [f"running: pid {st.pid} ({st.mode}), root {st.root}"]
    lines += [f"  {bdf}  {path}" for bdf, path in sorted(st.sockets.items())]
    out.emit_text("\n".join(lines))

"""`accelctl addr`: logical addresses (show, assign, diff) and the bus/MMIO planner (plan).

This is a Typer sub-app so other modules can add commands to it (``addr apply|verify``).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._layout import Column, Layout
from accelctl.cli._options import JsonOpt

if TYPE_CHECKING:
    from accelctl.addressing.addresses import AddressMap
    from accelctl.addressing.diff import Difference
    from accelctl.addressing.planner import PlanResult

app = typer.Typer(help="Stable logical addresses (cardN.epM, global ids), the persisted map, the planner.")


class Order(str, enum.Enum):
    position = "position"
    slot = "slot"
    serial = "serial"


OrderOpt = Annotated[
    Order,
    typer.Option("--order", help="Number cards by physical position (default), slot number or serial."),
]
StateDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--state-dir",
        envvar="ACCELCTL_STATE_DIR",
        help="Where the persisted map lives (default /var/lib/accelctl).",
        show_default=False,
    ),
]


def _state_dir(option: Optional[Path]) -> Path:
    from accelctl.addressing.state import state_dir

    return state_dir(option)


@app.command("show")
def show(
    ctx: typer.Context,
    order: OrderOpt = Order.position,
    state_dir_opt: StateDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """The address of every accelerator endpoint now, and the persisted map where it differs."""
    from accelctl.addressing.report import address_report

    ctx.obj.json_errors = json
    machine = ctx.obj.machine()
    report = address_report(
        machine.topology(), order=order.value, state_directory=_state_dir(state_dir_opt), machine=machine.source
    )
    if json:
        out.emit_json(report.to_dict())
        return
    if report.state_error:
        out.warn(f"persisted map ignored: {report.state_error}")
    if report.visible is not None:
        out.warn(f"showing only {report.visible.describe()}")
    shown = report.shown()
    if not shown.endpoints:
        out.err_console().print("no accelerator endpoints")
        return
    from accelctl.cli._layout import terminal_width

    width = terminal_width()
    layout = _address_table(shown, width)
    out.console().print(layout.table)
    if width is not None and layout.notice(width):
        out.err_console().print(out.esc(layout.notice(width)))
    if report.differences:
        out.console().print(f"\npersisted map {out.esc(report.state_path)} differs:")
        out.console().print(_differences_text(report.differences))


@app.command("assign")
def assign(
    ctx: typer.Context,
    order: OrderOpt = Order.position,
    state_dir_opt: StateDirOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a persisted map even if it is corrupt or foreign.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Compute the address map and persist it (atomic write, under a file lock)."""
    from accelctl.addressing.addresses import compute_addresses
    from accelctl.addressing.state import save_map

    ctx.obj.json_errors = json
    machine = ctx.obj.machine()
    amap = compute_addresses(machine.topology(), order.value)
    path = save_map(_state_dir(state_dir_opt), amap, machine=machine.source, force=force)
    if json:
        out.emit_json({"path": str(path), **amap.to_dict()})
        return
    out.err_console().print(f"wrote {out.count(len(amap.endpoints), 'endpoint')} on {out.count(len(amap.cards), 'card')} to {out.esc(path)}")


@app.command("diff")
def diff(
    ctx: typer.Context,
    state_dir_opt: StateDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Compare the machine now with the persisted map. Exit 1 when anything differs."""
    from accelctl.addressing.report import diff_with_persisted

    ctx.obj.json_errors = json
    machine = ctx.obj.machine()
    persisted, current, differences = diff_with_persisted(
        machine.topology(), state_directory=_state_dir(state_dir_opt), machine=machine.source
    )
    if json:
        out.emit_json(
            {
                "path": str(persisted.path),
                "order": current.order.value,
                "same": not differences,
                "differences": [d.to_dict() for d in differences],
            }
        )
    elif differences:
        out.console().print(_differences_text(differences))
    else:
        out.err_console().print(f"machine matches {out.esc(persisted.path)}")
    if differences:
        raise typer.Exit(1)


# --- rendering for people -------------------------------------------------------------------


#: GID, NAME and BDF are always shown; POSITION, then SERIAL, then SLOT give way at a terminal.
ADDRESS_COLUMNS = (Column("GID", justify="right"), Column("NAME"), Column("BDF"), Column("SLOT", keep=2),
                   Column("SERIAL", keep=1), Column("POSITION", keep=0))


def _address_table(amap: AddressMap, width: int | None) -> Layout:
    from accelctl.cli._layout import fit_table

    slot_of = {c.card: c.slot for c in amap.cards}
    rows = [
        [str(e.global_id), out.esc(e.name), out.esc(e.bdf), out.esc(slot_of.get(e.card) or "-"),
         out.esc(e.serial or "-"), out.esc(e.position)]
        for e in amap.endpoints
    ]
    return fit_table(ADDRESS_COLUMNS, rows, width)


def _differences_text(differences: list[Difference]) -> str:
    colour = {"vanished": "red", "appeared": "green", "swapped": "yellow", "moved": "yellow"}
    return "\n".join(
        f"[{colour.get(d.kind, 'magenta')}]{d.kind:>17}[/] {out.esc(d.message)}" for d in differences
    )


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    add: Annotated[
        Optional[list[str]],
        typer.Option(
            "--add",
            help='A card to add: "port=BDF,endpoints=N,bar=64G[,bar32=512K][,layout=switch|single|multifunction]". '
            "Repeatable.",
        ),
    ] = None,
    spec: Annotated[
        Optional[Path],
        typer.Option("--spec", help="Plan a topology spec (fixtures/*.toml) instead of the machine."),
    ] = None,
    no_above_4g: Annotated[
        bool, typer.Option("--no-above-4g", help="Plan as firmware without Above-4G decoding does.")
    ] = False,
    hotplug_bus_reserve: Annotated[
        Optional[int],
        typer.Option("--hotplug-bus-reserve", min=0, max=255, help="Spare buses for every hot-plug port."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Allocate bus numbers and MMIO windows as firmware would; say whether it fits. Exit 1 if not."""
    from accelctl.addressing.plan_mmio import Apertures
    from accelctl.addressing.planner import parse_addition, plan, plan_spec

    ctx.obj.json_errors = json
    additions = [parse_addition(a) for a in add or []]
    limits = {"apertures": Apertures(above_4g=not no_above_4g), "hotplug_bus_reserve": hotplug_bus_reserve}
    if spec is not None:
        result = plan_spec(spec, additions, accel_ids=ctx.obj.accel_ids, **limits)
    else:
        result = plan(ctx.obj.topology(), additions, **limits)
    if json:
        out.emit_json(result.to_dict())
    else:
        out.console().print(_plan_text(result))
    if not result.fits:
        raise typer.Exit(1)


def _plan_text(result: PlanResult) -> str:
    lines = []
    for r in result.roots:
        last = "?" if r.last_bus is None else f"{r.last_bus:02x}"
        lines.append(
            f"[bold]{out.esc(r.id)}[/]: buses {r.bus:02x}-{last} (may use up to {r.bus_limit:02x}); "
            f"32-bit {_window_text(r.mem_window)}; 64-bit prefetchable {_window_text(r.pref_window)}"
        )
    for a in result.additions:
        buses = "-".join(f"{b:02x}" for b in a.boot_buses) if a.boot_buses else "?"
        hot = "fits" if a.hot_add_fits else "does not fit: " + "; ".join(a.hot_add_issues)
        lines.append(out.esc(f"add {a.addition.text}: at boot buses {buses}; hot-add now {hot}"))
    for i in result.issues:
        lines.append(f"[red]runs out[/] {out.esc(f'({i.resource} at {i.where}): {i.message}')}")
    if result.unknown:
        lines.append(f"[yellow]{len(result.unknown)} functions have memory needs that are not fully known[/]")
    lines.append("[green]fits[/]" if result.fits else "[red]does not fit[/]")
    return "\n".join(lines)


def _window_text(window: tuple[int, int] | None) -> str:
    if window is None:
        return "none"
    from accelctl.addressing.plan_mmio import format_size

    start, size = window
    return f"{format_size(size)} at {start:#x}"

"""`accelctl reset DEVICE --level flr|bus|card|controller`: show the blast radius, refuse when in
use or unconfirmed, reset, and prove the devices came back the same."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._options import JsonOpt


class Level(str, enum.Enum):
    flr = "flr"
    bus = "bus"
    card = "card"
    controller = "controller"


def _render_plan(plan, con) -> None:  # type: ignore[no-untyped-def]
    target = plan.target + (f" ({plan.target_address})" if plan.target_address else "")
    con.print(f"[bold]{plan.level.value} reset[/bold] of {out.esc(target)} at {out.esc(plan.point)} ({out.esc(plan.platform)})")
    con.print(f"{len(plan.affected)} function(s) will be reset:")
    for a in plan.affected:
        addr = f" {a.address}" if a.address else ""
        con.print(out.esc(f"  {a.bdf}{addr}  {a.kind}"))
    for h in plan.in_use:
        con.print(f"  [yellow]in use[/yellow]: {out.esc(f'pid {h.pid} ({h.command}) holds {h.bdf}: {h.how}')}")
    for why in plan.in_use_unknown:
        con.print(f"  [yellow]in use: unknown[/yellow]: {out.esc(why)}")
    con.print("steps:")
    for i, s in enumerate(plan.steps, 1):
        con.print(out.esc(f"  {i}. {s.detail}"))


def _render_result(result, n_affected: int) -> None:  # type: ignore[no-untyped-def]
    con = out.err_console()
    for step in result.timeline.steps:
        con.print(out.esc(f"  {step.name:<28} {step.duration_s * 1000:8.1f} ms  {step.status}"))
    if result.ok:
        out.emit_text(f"reset ok: {n_affected} function(s) came back the same")


def _ask_on_terminal(question: str) -> bool:
    """Ask on the terminal; an empty answer is No, and so is end of input (Ctrl-D)."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def reset_command(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="BDF, cardN, cardN.epM, global id or serial.")],
    level: Annotated[Level, typer.Option("--level", "-l", help="What to reset (see docs/reset.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and exit; touch nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Reset even when processes hold affected devices.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for devices to come back.", min=0.1)
    ] = 30.0,
    json: JsonOpt = False,
    inject: Annotated[
        Optional[list[str]],
        typer.Option(
            "--inject",
            hidden=True,
            help="Simulator only: fault for the reset: no-return[:BDF], narrow-link[:BDF], new-serial[:BDF], "
            "reset-fail[:BDF].",
        ),
    ] = None,
    platform_kind: Annotated[
        Optional[str], typer.Option("--platform", hidden=True, help="linux|simulator (tests).")
    ] = None,
) -> None:
    """Reset a device, showing first everything the reset will touch; verify it came back.

    Exit codes: 0 reset and every check passed; 5 a step of the reset failed; 7 reset done,
    verification failed; 8 refused (in use or unknown whether in use, not confirmed, level not
    offered); 4 not permitted."""
    from accelctl.reset.plan import SCHEMA_VERSION, plan_reset
    from accelctl.reset.policy import authorize
    from accelctl.reset.run import run_reset

    ctx.obj.json_errors = json
    machine = ctx.obj.machine(platform_kind=platform_kind)
    plan = plan_reset(machine, device, level.value, timeout_s=timeout)
    if dry_run:
        if json:
            out.emit_json({"schema_version": SCHEMA_VERSION, "plan": plan.to_dict()})
        else:
            _render_plan(plan, out.console())
        return
    if not json:
        _render_plan(plan, out.err_console())
    authorize(plan, force=force, yes=yes, ask=_ask_on_terminal if sys.stdin.isatty() else None)

    def progress(message: str) -> None:
        sys.stderr.write(f"accelctl: {message}\n")
        sys.stderr.flush()

    result = run_reset(plan, machine, timeout_s=timeout, inject=list(inject or []), progress=progress)
    if json:
        out.emit_json({"schema_version": SCHEMA_VERSION, "plan": plan.to_dict(), "result": result.to_dict()})
    else:
        _render_result(result, len(plan.affected))
    if not result.ok:
        raise result.error()

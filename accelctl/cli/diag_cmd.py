"""`accelctl diag`: rules over the topology -> findings; exit 1 when any is an error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from accelctl.cli import _output as out
from accelctl.cli._errors import ExitCode
from accelctl.cli._layout import Column
from accelctl.cli._options import JsonOpt

if TYPE_CHECKING:
    from rich.table import Table

    from accelctl.diagnostics.findings import Report

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def diag_command(
    ctx: typer.Context,
    json: JsonOpt = False,
    manifest: Annotated[
        Optional[Path],
        typer.Option("--manifest", "-m", help="TOML file saying what this machine should have (docs/manifest.md)."),
    ] = None,
    level: Annotated[
        int,
        typer.Option(
            "--level", "-l", min=1, max=3,
            help="1: presence and links; 2: + AER, ACS, drivers, bus numbers, BARs; 3: + bus ranges "
            "and bridge windows (default).",
        ),
    ] = 3,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Exit 0 when the machine has no accelerator to check (default: exit 9)."),
    ] = False,
) -> None:
    """Check the accelerators: missing cards/endpoints, bad links, AER, ACS, bus numbers, BARs.

    Exit code 0 when no finding is an error, 1 when one is (docs/findings.md lists the codes),
    9 when there is no accelerator to check (a machine whose cards all vanished looks like
    that; --allow-empty accepts it).
    """
    from accelctl.diagnostics import load_manifest, run_diagnostics

    ctx.obj.json_errors = json
    expected = load_manifest(manifest) if manifest is not None else None
    report = run_diagnostics(ctx.obj.topology(), manifest=expected, level=level)
    if json:
        out.emit_json(report.to_dict())
    else:
        _render(report)
    if report.failed:
        raise typer.Exit(int(ExitCode.FAILED))
    if report.nothing_checked and not allow_empty:
        raise typer.Exit(int(ExitCode.NOTHING_TO_CHECK))


def _render(report: Report) -> None:
    console = out.console()
    accel = report.checked.get("accelerator_endpoints", 0)
    if report.findings:
        from accelctl.cli._layout import terminal_width

        console.print(findings_table(report, terminal_width()))
    for n in report.not_checked:
        sample = ", ".join(n.subjects[:3]) + (", ..." if len(n.subjects) > 3 else "")
        console.print(f"[dim]not checked[/] {n.code} on {len(n.subjects)} ({out.esc(sample)}): {out.esc(n.reason)}")
    s = report.summary
    verdict = {"fail": "[bold red]FAIL[/]", "pass": "[bold green]PASS[/]",
               "nothing_to_check": "[bold yellow]NOTHING TO CHECK[/]"}[report.verdict]
    scope = (f"{out.count(report.checked.get('cards', 0), 'card')}, {out.count(accel, 'accelerator endpoint')}"
             if accel else "no accelerators found: nothing to check; --allow-empty accepts that")
    console.print(
        f"{verdict}: {out.count(s['error'], 'error')}, {out.count(s['warning'], 'warning')}, {s['info']} info "
        f"(level {report.level}; {scope}"
        + (f"; manifest {out.esc(report.manifest)}" if report.manifest else "") + ")"
    )


#: SEVERITY, CODE and SUBJECT are identifiers, never cut; the message wraps at spaces.
FINDING_COLUMNS = (Column("SEVERITY"), Column("CODE"), Column("SUBJECT"),
                   Column("MESSAGE / HINT", identifier=False))


def findings_table(report: Report, width: int | None = None) -> Table:
    from rich.markup import escape

    from accelctl.cli._layout import fit_table

    rows = []
    for f in report.findings:
        sev = f.severity.value
        text = escape(f.message) + (f"\n[dim]hint: {escape(f.hint)}[/]" if f.hint else "")
        rows.append([f"[{_STYLE[sev]}]{sev}[/]", f.code, escape(f.subject), text])
    return fit_table(FINDING_COLUMNS, rows, width).table

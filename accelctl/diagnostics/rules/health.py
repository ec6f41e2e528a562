"""Device health: not answering, no driver, AER error counters."""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.sysfs.attrs import aer_total
from accelctl.topology.model import NodeKind


def inaccessible(ctx: RuleContext) -> Iterator[Finding]:
    """Config space all ones. Reported on the topmost dead function; what is below it is counted."""
    fns = ctx.topo.functions
    dead = [f for f in fns.values() if not f.accessible]
    ctx.checked["functions"] = len(fns)
    for fn in dead:
        parent = fns.get(fn.parent or "")
        if parent is not None and not parent.accessible:
            continue
        if fn.kind is NodeKind.VIRTUAL_FUNCTION and fn.physfn in fns and not fns[fn.physfn].accessible:
            continue
        below = sum(1 for n in ctx.topo.subtree(fn.id) if n in fns and not fns[n].accessible)
        extra = f", and {below} function(s) below it with it" if below else ""
        yield Finding(
            "DEVICE_INACCESSIBLE", Severity.ERROR, fn.id,
            f"{ctx.label(fn.id)} ({fn.model}) reads all ones from config space: it fell off the "
            f"bus{extra}",
            "check the kernel log for AER/DPC events and Xid-style driver errors; try a reset "
            "(accelctl reset) or remove+rescan; if it recurs, power-cycle and RMA the card",
        )


def driver_unbound(ctx: RuleContext) -> Iterator[Finding]:
    for fn in ctx.accelerators:
        if fn.driver is None and fn.accessible:
            yield Finding(
                "DRIVER_UNBOUND", Severity.WARNING, fn.id,
                f"{ctx.label(fn.id)} ({fn.model}) has no driver bound",
                "load the vendor driver (modprobe) and check the kernel log for probe errors; a "
                "probe failure right after boot often follows BAR_UNASSIGNED",
            )


def aer_errors(ctx: RuleContext) -> Iterator[Finding]:
    with_aer = 0
    for fn in ctx.topo.functions.values():
        if not fn.aer:
            continue
        with_aer += 1
        counts = {kind: aer_total(fn.aer[kind]) for kind in ("correctable", "nonfatal", "fatal") if kind in fn.aer}
        if not any(counts.values()):
            continue
        severe = counts.get("nonfatal", 0) or counts.get("fatal", 0)
        detail = []
        for kind in ("fatal", "nonfatal", "correctable"):
            if counts.get(kind):
                named = ", ".join(
                    f"{name} {n}" for name, n in sorted(fn.aer[kind].items())
                    if n and not name.startswith("TOTAL_ERR_")
                )
                detail.append(f"{kind} {counts[kind]}" + (f" ({named})" if named else ""))
        yield Finding(
            "AER_ERRORS", Severity.ERROR if severe else Severity.WARNING, fn.id,
            f"{ctx.label(fn.id)} AER counters: {'; '.join(detail)}",
            "uncorrectable errors mean lost or corrupted transactions: check the kernel log, reseat, "
            "and replace the card, riser or cable if they recur" if severe else
            "a few correctable errors are normal; a growing count (compare two runs) points at "
            "signal integrity: reseat, check risers/retimers, and the link speed",
        )
    ctx.checked["aer_functions"] = with_aer

"""BARs and bridge windows: unassigned BARs (judged against peers of the same model) and bridge
windows that do not contain what sits below them."""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.diagnostics.planner_hints import bar_unassigned_hint
from accelctl.pci.regs import CLASS_BRIDGE_SUBTRACTIVE
from accelctl.topology.model import Bar, NodeKind, PciFunction


def _assigned(bar: Bar) -> bool:
    # The kernel leaves a failed BAR zero-sized or at address 0; no device BAR lives at 0.
    return bar.size > 0 and bar.start != 0


def _size_text(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


def bar_unassigned(ctx: RuleContext) -> Iterator[Finding]:
    """A BAR index that peers of the same model have assigned and this function does not."""
    groups: dict[tuple, list[PciFunction]] = {}
    for fn in ctx.topo.functions.values():
        if fn.is_bridge or not fn.accessible or fn.kind is NodeKind.VIRTUAL_FUNCTION or not fn.bars:
            continue
        key = (fn.vendor_id, fn.device_id, fn.subsystem_vendor_id, fn.subsystem_device_id, fn.bdf.function)
        groups.setdefault(key, []).append(fn)
    judged = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        judged += len(members)
        needed: dict[int, int] = {}
        for fn in members:
            for bar in fn.bars:
                if _assigned(bar):
                    needed[bar.index] = max(needed.get(bar.index, 0), bar.size)
        for fn in members:
            have = {b.index for b in fn.bars if _assigned(b)}
            missing = sorted(set(needed) - have)
            if not missing:
                continue
            bars = ", ".join(f"BAR{i} ({_size_text(needed[i])})" for i in missing)
            yield Finding(
                "BAR_UNASSIGNED", Severity.ERROR, fn.id,
                f"{ctx.label(fn.id)} ({fn.model}) has no address for {bars}, which its "
                f"{len(members) - 1} peer(s) of the same model have",
                bar_unassigned_hint(ctx.topo, fn.id),
            )
    ctx.checked["bar_peers"] = judged


def _windows_for(kind: str, prefetchable: bool, bridge: PciFunction) -> list[tuple[int, int]]:
    """The bridge windows a child resource of `kind` ("io" or "mem") may legally sit in."""
    if kind == "io":
        names = ["io_window"]
    elif prefetchable:
        names = ["pref_window", "mem_window"]  # a prefetchable BAR may sit in either
    else:
        names = ["mem_window"]
    return [bridge.windows[n] for n in names if n in bridge.windows and bridge.windows[n][1] > 0]


def _inside(start: int, size: int, windows: list[tuple[int, int]]) -> bool:
    return any(ws <= start and start + size <= ws + wsize for ws, wsize in windows)


def _child_resources(child: PciFunction) -> list[tuple[str, str, int, int, bool]]:
    """(what, kind, start, size, prefetchable) of each assigned BAR and window of a child."""
    out = []
    for bar in child.bars:
        if _assigned(bar) and (bar.is_io or bar.is_memory):
            out.append((f"BAR{bar.index}", "io" if bar.is_io else "mem", bar.start, bar.size, bar.prefetchable))
    for name, (start, size) in child.windows.items():
        if size > 0 and start != 0:
            out.append((name, "io" if name == "io_window" else "mem", start, size, name == "pref_window"))
    return out


def bridge_windows(ctx: RuleContext) -> Iterator[Finding]:
    """Each assigned child BAR (and child bridge window) inside its parent bridge's windows."""
    fns = ctx.topo.functions
    judged = 0
    for bridge in fns.values():
        if not bridge.is_bridge or not bridge.accessible:
            continue
        below = [(child, res) for cid in ctx.topo.children.get(bridge.id, ())
                 if (child := fns.get(cid)) is not None and child.accessible and (res := _child_resources(child))]
        if not below:
            continue
        if bridge.class_code == CLASS_BRIDGE_SUBTRACTIVE:
            ctx.could_not_check("BAR_UNASSIGNED", bridge.id, "subtractive-decode bridge: it also forwards "
                                "addresses outside its windows, so they do not bound what is below it")
            continue
        if not bridge.windows:
            why = bridge.unknown.get("resource", "its resource table has no bridge window lines")
            ctx.could_not_check("BAR_UNASSIGNED", bridge.id, f"bridge windows unknown: {why}")
            continue
        judged += 1
        outside: list[str] = []
        for child, resources in below:
            for what, kind, start, size, prefetchable in resources:
                if not _inside(start, size, _windows_for(kind, prefetchable, bridge)):
                    outside.append(f"{child.id} {what} ({_size_text(size)} at {start:#x})")
        if outside:
            yield Finding(
                "BAR_UNASSIGNED", Severity.ERROR, bridge.id,
                f"bridge {ctx.label(bridge.id)} windows do not contain what is below it: "
                + "; ".join(outside),
                bar_unassigned_hint(ctx.topo, bridge.id),
                tuple(sorted({o.split()[0] for o in outside})),
            )
    ctx.checked["bridge_windows"] = judged

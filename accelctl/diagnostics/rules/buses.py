"""Bus numbers: bridges left without any (hot-add ran out), and ranges that do not nest."""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.diagnostics.planner_hints import bus_exhaustion_hint
from accelctl.topology.model import NodeKind, PciFunction


def _has_range(fn: PciFunction) -> bool:
    """A bridge whose bus numbers can be judged: answering, and not left at 0 (exhausted)."""
    return fn.is_bridge and fn.accessible and bool(fn.secondary_bus) and fn.secondary_bus != 0xFF


def _behind(fn: PciFunction, ctx: RuleContext) -> str | None:
    """What in the tree says something should be below a bridge, or None when nothing does."""
    if fn.kind is NodeKind.SWITCH_UPSTREAM:
        return "a switch upstream port always has its downstream ports behind it"
    if fn.slot_presence:
        return "its slot reports a card present"
    if fn.link is not None and fn.link.width:
        return f"its link is up (x{fn.link.width}), so a device is attached"
    if ctx.topo.children.get(fn.id):
        return "functions are nested below it"
    return None


def bus_numbers_exhausted(ctx: RuleContext) -> Iterator[Finding]:
    """A bridge left without bus numbers, when the tree shows something should be behind it.

    A port with secondary = subordinate = 0 and nothing saying a device is there (no presence,
    no link, not a switch) is an unused port some chipsets leave unnumbered: not a fault.
    """
    bridges = 0
    fns = ctx.topo.functions
    for fn in fns.values():
        if not fn.is_bridge or not fn.accessible:
            continue
        bridges += 1
        if fn.secondary_bus != 0 or fn.subordinate_bus not in (0, None):
            continue
        why = _behind(fn, ctx)
        if why is None:
            if fn.kind is NodeKind.PCI_BRIDGE and "capabilities" in fn.unknown:
                ctx.could_not_check(
                    "BUS_NUMBERS_EXHAUSTED", fn.id,
                    "bridge without bus numbers whose port type is unreadable (64-byte config): "
                    "whether a switch sits there is unknown")
            continue
        parent = fns.get(fn.parent or "")
        used = ""
        if parent is not None and parent.secondary_bus is not None:
            used = (f"; its parent {parent.id} spans buses "
                    f"[{parent.secondary_bus:02x}-{(parent.subordinate_bus or parent.secondary_bus):02x}]")
        yield Finding(
            "BUS_NUMBERS_EXHAUSTED", Severity.ERROR, fn.id,
            f"bridge {ctx.label(fn.id)} ({fn.kind.value}) has no bus numbers (secondary = subordinate "
            f"= 0) although {why}: nothing below it can enumerate{used}",
            bus_exhaustion_hint(ctx.topo, fn.id),
        )
    ctx.checked["bridges"] = bridges


def bus_range_conflict(ctx: RuleContext) -> Iterator[Finding]:
    """Each bridge's [secondary, subordinate] holds its children; sibling ranges are disjoint."""
    fns = ctx.topo.functions
    children = ctx.topo.children
    parents = [*ctx.topo.host_bridges, *(f.id for f in fns.values() if _has_range(f))]
    for pid in parents:
        kids = [fns[c] for c in children.get(pid, ()) if c in fns]
        parent = fns.get(pid)
        if parent is not None:
            sec, sub = parent.secondary_bus or 0, parent.subordinate_bus
            sub = sec if sub is None else sub
            for kid in kids:
                if kid.kind is NodeKind.VIRTUAL_FUNCTION:
                    ok = sec <= kid.bdf.bus <= sub  # VFs may sit on further buses of the range
                elif _has_range(kid):
                    ok = kid.bdf.bus == sec and sec < kid.secondary_bus <= (kid.subordinate_bus or 0) <= sub
                else:
                    ok = kid.bdf.bus == sec
                if ok:
                    continue
                what = (f"its range [{kid.secondary_bus:02x}-{(kid.subordinate_bus or 0):02x}]"
                        if _has_range(kid) else f"bus {kid.bdf.bus:02x}")
                yield Finding(
                    "BUS_RANGE_CONFLICT", Severity.ERROR, pid,
                    f"bridge {ctx.label(pid)} spans buses [{sec:02x}-{sub:02x}] but its child "
                    f"{ctx.label(kid.id)} uses {what}",
                    "firmware or a hot-plug driver left inconsistent bus numbers: boot with "
                    "pci=assign-busses (or update the BIOS) and rescan",
                    (kid.id,),
                )
        ranged = sorted((k for k in kids if _has_range(k)), key=lambda k: (k.secondary_bus, k.bdf))
        for prev, nxt in zip(ranged, ranged[1:]):
            if (prev.subordinate_bus or prev.secondary_bus or 0) >= (nxt.secondary_bus or 0):
                yield Finding(
                    "BUS_RANGE_CONFLICT", Severity.ERROR, nxt.id,
                    f"bridge {ctx.label(nxt.id)} range [{nxt.secondary_bus:02x}-"
                    f"{(nxt.subordinate_bus or 0):02x}] overlaps its sibling {ctx.label(prev.id)} "
                    f"[{prev.secondary_bus:02x}-{(prev.subordinate_bus or 0):02x}]",
                    "two bridges claim the same buses: devices behind one of them are unreachable; "
                    "boot with pci=assign-busses (or update the BIOS) and rescan",
                    (prev.id,),
                )
    ctx.checked["bus_ranges"] = len(parents)

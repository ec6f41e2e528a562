"""Bus numbers the way firmware assigns them at boot: depth-first, in device/function order.

Each bridge takes the next free bus as its secondary, numbers its subtree, and ends at the last
bus used below it, or at ``secondary + bus_reserve`` when the port keeps buses for hot-plug.
A root bus may use buses up to just below the next root bus of its domain (ACPI gives each
host bridge a fixed range), 0xff for the last one.
"""

from __future__ import annotations

from accelctl.addressing.plan_model import PlanFunction, PlanIssue, PlanRoot

MAX_BUS = 0xFF


def number_buses(roots: list[PlanRoot]) -> list[PlanIssue]:
    """Fill bus/secondary/subordinate of every function; return where numbers ran out."""
    issues: list[PlanIssue] = []
    for root in roots:
        root.last_bus = _number(root.functions, root.bus, root.bus, root, issues)
    return issues


def _number(funcs: list[PlanFunction], bus: int, last: int, root: PlanRoot, issues: list[PlanIssue]) -> int:
    for f in sorted(funcs, key=lambda x: x.devfn):
        f.bus = bus
        if not f.is_bridge:
            continue
        if f.hot_added:
            f.secondary = f.subordinate = 0
            continue
        last += 1
        if last > root.bus_limit and not _already_reported(issues, root):
            issues.append(_exhausted(root, f.id, last))
        f.secondary = last
        last = _number(f.children, f.secondary, last, root, issues)
        last = max(last, f.secondary + f.bus_reserve)
        if last > root.bus_limit and not _already_reported(issues, root):
            issues.append(_exhausted(root, f.id, last))
        f.subordinate = last
    return last


def _already_reported(issues: list[PlanIssue], root: PlanRoot) -> bool:
    return any(i.resource == "bus" and i.where == root.id for i in issues)


def _exhausted(root: PlanRoot, bridge: str, wanted: int) -> PlanIssue:
    available = root.bus_limit - root.bus
    return PlanIssue(
        "bus",
        root.id,
        f"bus numbers run out under {root.id}: {bridge} needs bus {wanted:#04x}, but root bus "
        f"{root.bus:02x} may only use buses up to {root.bus_limit:02x}",
        needed=wanted - root.bus,
        available=available,
    )


def buses_needed(f: PlanFunction) -> int:
    """Buses a subtree takes below the port that holds it: one per bridge in it (reserves aside)."""
    return sum(1 for b in f.bridges() if not b.hot_added)

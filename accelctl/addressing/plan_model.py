"""The planner's tree: what each bridge and function needs (buses, BARs), independent of where
it came from (a scanned topology, or cards the user wants to add)."""

from __future__ import annotations

from dataclasses import dataclass, field

from accelctl.topology.walk import depth_first

MIB = 1 << 20


@dataclass(slots=True)
class BarNeed:
    """One memory request of a function: a BAR, or all VFs' copies of one VF BAR."""

    owner: str
    #: BAR index 0-5, or 7+i for VF BAR i (the kernel's resource line numbers)
    index: int
    size: int
    align: int
    #: 64-bit prefetchable BARs go to the prefetchable window above 4 GiB; all others below 4 GiB
    prefetchable_64: bool


@dataclass(slots=True)
class PlanFunction:
    """A PCI function in the plan."""

    id: str
    devfn: int
    is_bridge: bool
    bars: list[BarNeed] = field(default_factory=list)
    children: list[PlanFunction] = field(default_factory=list)
    #: a bridge that keeps at least this many buses beyond its secondary (hot-plug reserve)
    bus_reserve: int = 0
    hotplug_capable: bool = False
    #: hot-added after boot: firmware never numbered it (BUS_NUMBERS_EXHAUSTED shape)
    hot_added: bool = False
    #: not on the machine: added by the user's --add
    added: bool = False
    # results
    bus: int | None = None
    secondary: int | None = None
    subordinate: int | None = None
    mem_window: tuple[int, int] | None = None
    pref_window: tuple[int, int] | None = None
    bar_addr: dict[int, int] = field(default_factory=dict)

    def bridges(self) -> list[PlanFunction]:
        """This function and every bridge below it, depth-first."""
        return [f for f in depth_first([self], lambda f: f.children) if f.is_bridge]


@dataclass(slots=True)
class PlanRoot:
    """A root bus (host bridge): fixed bus number; buses up to `bus_limit` are its to give."""

    id: str
    domain: int
    bus: int
    bus_limit: int
    functions: list[PlanFunction] = field(default_factory=list)
    last_bus: int | None = None
    mem_window: tuple[int, int] | None = None
    pref_window: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class PlanIssue:
    """Where planning ran out. ``resource`` is ``bus``, ``mem32`` or ``pref64``."""

    resource: str
    where: str
    message: str
    needed: int
    available: int

    def to_dict(self) -> dict[str, object]:
        return {
            "resource": self.resource,
            "where": self.where,
            "message": self.message,
            "needed": self.needed,
            "available": self.available,
        }


def align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)

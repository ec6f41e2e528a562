"""Events from comparing two readings of a sysfs tree: add, remove, bind, unbind, link retrained,
AER counters rising (with a rate per second)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelctl.machine import Machine


@dataclass(slots=True)
class Event:
    #: add | remove | change | bind | unbind | link | aer
    action: str
    bdf: str
    time: float
    detail: dict[str, Any] = field(default_factory=dict)
    source: str = "poll"

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "time": round(self.time, 3), "action": self.action,
                "bdf": self.bdf, "source": self.source, **self.detail}


@dataclass(slots=True)
class FnState:
    accelerator: bool
    driver: str | None
    link: tuple[float | None, int | None] | None
    aer: dict[str, int]


@dataclass(slots=True)
class TreeState:
    when: float
    functions: dict[str, FnState]


def read_state(machine: Machine, *, again: bool = True) -> TreeState:
    """The machine's state now (a fresh scan with its accelerator rules; ``again=False`` takes
    the scan the machine already holds)."""
    from accelctl.errors import SysfsRootError

    now = time.monotonic()
    try:
        topo = machine.rescan() if again else machine.topology()
    except SysfsRootError:
        return TreeState(now, {})  # every device gone
    fns: dict[str, FnState] = {}
    for fid, fn in topo.functions.items():
        aer: dict[str, int] = {}
        for sev in ("correctable", "nonfatal", "fatal"):
            block = (fn.aer or {}).get(sev) or {}
            for name, count in block.items():
                if name.startswith("TOTAL_ERR") and isinstance(count, int):
                    aer[sev] = count
        link = (fn.link.speed_gts, fn.link.width) if fn.link else None
        fns[fid] = FnState(bool(fn.is_accelerator or fn.card is not None), fn.driver, link, aer)
    return TreeState(now, fns)


def diff_states(old: TreeState, new: TreeState, *, with_link_aer: bool) -> list[Event]:
    out: list[Event] = []
    dt = max(new.when - old.when, 1e-6)
    for bdf in sorted(set(old.functions) | set(new.functions)):
        a, b = old.functions.get(bdf), new.functions.get(bdf)
        if a is None and b is not None:
            out.append(Event("add", bdf, time.time(), {"accelerator": b.accelerator}))
            continue
        if b is None and a is not None:
            out.append(Event("remove", bdf, time.time(), {"accelerator": a.accelerator}))
            continue
        assert a is not None and b is not None
        if a.driver != b.driver:
            action = "bind" if b.driver else "unbind"
            out.append(Event(action, bdf, time.time(), {"accelerator": b.accelerator,
                                                        "driver": b.driver or a.driver}))
        if not with_link_aer:
            continue
        if a.link != b.link:
            out.append(Event("link", bdf, time.time(), {
                "accelerator": b.accelerator, "message": "link retrained",
                "before": {"speed_gts": a.link[0] if a.link else None, "width": a.link[1] if a.link else None},
                "after": {"speed_gts": b.link[0] if b.link else None, "width": b.link[1] if b.link else None}}))
        for sev, count in b.aer.items():
            prev = a.aer.get(sev, 0)
            if count > prev:
                out.append(Event("aer", bdf, time.time(), {
                    "accelerator": b.accelerator, "severity": sev, "before": prev, "after": count,
                    "delta": count - prev, "rate_per_s": round((count - prev) / dt, 3)}))
    return out

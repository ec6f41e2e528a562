"""Device health for the kubelet, from successive inventories: not sticky, not all-or-nothing.

A device is Unhealthy while
- it has a fault in the current snapshot (fell off the bus, link down, a link on its path
  narrower than both ends: accelctl.fleet.inventory), or it vanished from the tree; or
- its AER counters (at either end of its link) climbed recently: any new uncorrectable error
  (nonfatal or fatal), or at least `correctable_per_poll` new correctable ones between two polls
  (a few correctable errors are normal on a healthy link; calling them a fault would be a false
  alarm). It is Healthy again after `recover_polls` polls in a row without such a climb.

Counts already there when the plugin starts are the baseline, not a fault: only climbs count. A
counter that goes down (a device reset clears it) sets a new baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelctl.fleet.inventory import FleetDevice, Inventory

HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    correctable_per_poll: int = 100
    recover_polls: int = 3

    def __post_init__(self) -> None:
        if self.correctable_per_poll < 1 or self.recover_polls < 1:
            raise ValueError("correctable_per_poll and recover_polls must be >= 1")


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    bdf: str
    numa_node: int | None
    health: str
    #: why it is Unhealthy (empty when Healthy)
    reasons: tuple[str, ...]


class HealthTracker:
    """Feed it one inventory per poll; it answers every device ever seen, in first-seen order."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.policy = policy or HealthPolicy()
        self._seen: dict[str, FleetDevice] = {}
        self._baseline: dict[str, dict[str, int]] = {}
        #: polls left before an AER climb stops counting
        self._cooling: dict[str, int] = {}

    def update(self, inv: Inventory) -> list[DeviceHealth]:
        current = inv.by_bdf()
        for dev in inv.devices:
            self._seen.setdefault(dev.bdf, dev)
        out = []
        for bdf, known in self._seen.items():
            dev = current.get(bdf)
            if dev is None:
                out.append(DeviceHealth(bdf, known.numa_node, UNHEALTHY, ("vanished from the PCI tree",)))
                self._baseline.pop(bdf, None)  # it may come back reset
                continue
            self._seen[bdf] = dev
            reasons = list(dev.faults)
            climb = self._aer_climb(dev)
            if climb:
                self._cooling[bdf] = self.policy.recover_polls
                reasons.append(climb)
            elif self._cooling.get(bdf, 0) > 0:
                self._cooling[bdf] -= 1
                if self._cooling[bdf]:
                    reasons.append("AER errors climbed recently")
            out.append(DeviceHealth(bdf, dev.numa_node, UNHEALTHY if reasons else HEALTHY, tuple(reasons)))
        return out

    def _aer_climb(self, dev: FleetDevice) -> str | None:
        before = self._baseline.get(dev.bdf)
        self._baseline[dev.bdf] = dict(dev.aer_totals)
        if before is None:
            return None
        delta = {cls: dev.aer_totals.get(cls, 0) - before.get(cls, 0) for cls in dev.aer_totals}
        uncorrectable = max(delta.get("nonfatal", 0), 0) + max(delta.get("fatal", 0), 0)
        if uncorrectable:
            return f"{uncorrectable} new uncorrectable AER error(s)"
        if delta.get("correctable", 0) >= self.policy.correctable_per_poll:
            return f"{delta['correctable']} new correctable AER errors in one poll"
        return None

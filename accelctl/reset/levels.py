"""Reset levels and which of them a function offers, from the graph and its sysfs facts."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from accelctl.errors import ResetUnsupportedError
from accelctl.topology import NodeKind, PciFunction, Topology


class ResetLevel(str, enum.Enum):
    #: Function Level Reset: the sysfs `reset` file with reset_method flr; one function (and its VFs)
    FLR = "flr"
    #: secondary bus reset on a bridge: every function below it
    BUS = "bus"
    #: secondary bus reset on the port above a card: the whole card, its switch included
    CARD = "card"
    #: the device's own controller reset through the driver core: one endpoint, queues recreated
    CONTROLLER = "controller"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True, frozen=True)
class ResetPoint:
    """Where a reset is applied and what it covers, before any platform check."""

    level: ResetLevel
    #: the function whose register (or sysfs file) does the reset: the target for flr and
    #: controller, the bridge for bus and card
    point: str
    #: every function the reset touches, sorted by BDF
    affected: tuple[str, ...]


def _sorted(topo: Topology, ids: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(ids), key=lambda i: topo.functions[i].bdf))


def _vfs_of(topo: Topology, fn: PciFunction) -> list[str]:
    # An FLR of a physical function takes its virtual functions down with it.
    return [f.id for f in topo.functions.values() if f.physfn == fn.id]


def not_offered(level: ResetLevel, reason: str) -> ResetUnsupportedError:
    """The error for one level ruled out, carrying only the reason (make_plan adds what the
    device does offer)."""
    return ResetUnsupportedError(reason, level=level.value, supported=[])


def reset_point(topo: Topology, fn: PciFunction, level: ResetLevel) -> ResetPoint:
    """The reset point and blast radius of `level` on `fn` (platform capabilities are checked
    separately).

    Raises:
        ResetUnsupportedError: the graph rules the level out; the message says why.
    """
    if level is ResetLevel.FLR:
        methods = fn.reset_methods
        if methods is not None and not ({"flr", "af_flr"} & set(methods)):
            offered = " ".join(methods) or "none"
            raise not_offered(level, f"{fn.id} does not offer FLR (kernel reset_method: {offered})")
        if methods is None and not fn.flr_capable:
            raise not_offered(level, f"{fn.id} has no FLR capability")
        return ResetPoint(level, fn.id, _sorted(topo, [fn.id, *_vfs_of(topo, fn)]))
    if level is ResetLevel.CONTROLLER:
        if not fn.is_accelerator or fn.kind is NodeKind.VIRTUAL_FUNCTION:
            raise not_offered(level, f"{fn.id} is a {fn.kind.value}, not an accelerator endpoint with a controller")
        return ResetPoint(level, fn.id, (fn.id,))
    if level is ResetLevel.BUS:
        if fn.is_bridge:
            # naming a bridge means: reset the bus below it
            below = [i for i in topo.subtree(fn.id) if i in topo.functions]
            if not below:
                raise not_offered(level, f"{fn.id} is a bridge with nothing below it")
            return ResetPoint(level, fn.id, _sorted(topo, below))
        parent = topo.functions.get(fn.parent or "")
        if parent is None or not parent.is_bridge:
            raise not_offered(level, f"{fn.id} sits directly on a root bus (no bridge above it to reset)")
        below = [i for i in topo.subtree(parent.id) if i in topo.functions]
        return ResetPoint(level, parent.id, _sorted(topo, below))
    # CARD
    if fn.card is None:
        raise not_offered(level, f"{fn.id} is not part of an accelerator card")
    card = topo.cards[fn.card]
    port = topo.functions.get(card.port or "")
    if port is None or not port.is_bridge:
        raise not_offered(level, f"card{card.index} sits directly on a root bus (no port above it to reset)")
    below = [i for i in topo.subtree(port.id) if i in topo.functions]
    return ResetPoint(level, port.id, _sorted(topo, below))

"""What `accelctl list` shows: accelerator endpoints by card (or every function with include_all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelctl.sysfs.scan import ScanWarning
from accelctl.topology.graph import Topology
from accelctl.topology.model import Card, NodeKind, PciFunction, card_name, endpoint_name


@dataclass(slots=True)
class DeviceRow:
    function: PciFunction
    #: endpoint index within its card (None for functions that are not card endpoints)
    endpoint: int | None
    #: ``cardN.epM`` for card endpoints, ``cardN`` for other card functions, else None
    name: str | None

    def to_dict(self) -> dict[str, Any]:
        d = self.function.to_dict()
        d["endpoint"] = self.endpoint
        d["name"] = self.name
        return d


@dataclass(slots=True)
class DeviceListing:
    rows: list[DeviceRow]
    cards: list[Card]
    warnings: list[ScanWarning]
    include_all: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "all": self.include_all,
            "devices": [r.to_dict() for r in self.rows],
            "cards": [c.to_dict() for c in self.cards],
            "warnings": [w.to_dict() for w in self.warnings],
        }


def list_devices(
    topo: Topology, *, include_all: bool = False, visible: frozenset[str] | None = None
) -> DeviceListing:
    """Rows sorted by BDF: accelerator endpoints (and their VFs), or every PCI function.

    `visible` (BDFs of accelerator endpoints, from ACCELCTL_VISIBLE_DEVICES) hides the other
    accelerator endpoints and the cards with none visible; names stay machine-wide.
    """
    endpoint_of: dict[str, tuple[int, int]] = {}
    for card in topo.cards:
        for i, ep in enumerate(card.endpoints):
            endpoint_of[ep] = (card.index, i)
    rows: list[DeviceRow] = []
    hidden: set[str] = set()
    if visible is not None:
        hidden = {ep for ep in endpoint_of if ep not in visible}
    for fn in sorted(topo.functions.values(), key=lambda f: f.bdf):
        if fn.id in hidden or (fn.physfn is not None and fn.physfn in hidden):
            continue
        if not include_all and not (fn.is_accelerator or fn.id in endpoint_of):
            continue
        if not include_all and fn.kind is NodeKind.VIRTUAL_FUNCTION:
            continue
        if fn.id in endpoint_of:
            card, ep = endpoint_of[fn.id]
            rows.append(DeviceRow(fn, ep, endpoint_name(card, ep)))
        else:
            rows.append(DeviceRow(fn, None, card_name(fn.card) if fn.card is not None else None))
    cards = [c for c in topo.cards if not all(ep in hidden for ep in c.endpoints)]
    return DeviceListing(rows, cards, list(topo.warnings), include_all)

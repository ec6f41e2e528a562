"""Stable logical addresses: every accelerator endpoint gets ``card``, ``endpoint`` and ``global_id``.

The rule (docs/addressing.md):

* ``position`` (the default): cards in physical order, i.e. by domain, then the path of
  device/function numbers from the root bus down to the card (``Card.position``). Bus numbers are
  not part of the key below the root bus, so inserting a card elsewhere, which shifts bus numbers,
  does not reorder the cards that did not move; directory listing and probe order never matter.
* ``slot``: cards by physical slot number; every card must sit in (or below) a numbered slot.
* ``serial``: cards by their Device Serial Number; every card must have one.

Endpoints within a card are always in physical order. ``global_id`` counts endpoints over the
cards in the chosen order, starting at 0. The name of an endpoint is ``cardN.epM``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelctl.errors import InvalidRequestError
from accelctl.topology.model import card_name, endpoint_name, hex_id

if TYPE_CHECKING:
    from accelctl.topology import Card, Topology


class AddressOrder(str, enum.Enum):
    POSITION = "position"
    SLOT = "slot"
    SERIAL = "serial"

    def __str__(self) -> str:
        return self.value


class AddressOrderError(InvalidRequestError):
    """The requested order needs a fact (slot number, serial) some cards do not have."""

    def __init__(self, order: AddressOrder, missing: list[str]) -> None:
        self.order = order
        self.missing = list(missing)
        what = "a slot number" if order is AddressOrder.SLOT else "a serial number"
        shown = ", ".join(self.missing[:8]) + (" ..." if len(self.missing) > 8 else "")
        super().__init__(
            f"cannot order by {order.value}: {len(self.missing)} cards have no {what} ({shown})",
            hint="use the default physical-position order (--order position)",
        )


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    """The logical address of one accelerator endpoint."""

    bdf: str
    card: int
    endpoint: int
    global_id: int
    serial: str | None
    #: physical position of the endpoint: ``dddd:rr/dd.f/dd.f/...`` (root bus, then devfn path)
    position: str

    @property
    def name(self) -> str:
        return endpoint_name(self.card, self.endpoint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bdf": self.bdf,
            "card": self.card,
            "endpoint": self.endpoint,
            "global_id": self.global_id,
            "serial": self.serial,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class CardAddress:
    """A card in the address map, with what identifies it across boots."""

    card: int
    top: str
    serial: str | None
    slot: str | None
    position: str
    vendor_id: str | None
    device_id: str | None
    model: str
    #: BDFs of the card's accelerator endpoints, in endpoint order
    endpoints: tuple[str, ...]

    @property
    def name(self) -> str:
        return card_name(self.card)

    @property
    def identity(self) -> str:
        """What makes this card the same card next boot: its serial, else position plus ids."""
        if self.serial:
            return f"serial:{self.serial}"
        return f"position:{self.position}:{self.vendor_id}:{self.device_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "card": self.card,
            "identity": self.identity,
            "top": self.top,
            "serial": self.serial,
            "slot": self.slot,
            "position": self.position,
            "vendor_id": self.vendor_id,
            "device_id": self.device_id,
            "model": self.model,
            "endpoints": list(self.endpoints),
        }


@dataclass(slots=True)
class AddressMap:
    """Every accelerator endpoint's address, in global-id order, and the cards."""

    order: AddressOrder
    cards: list[CardAddress]
    endpoints: list[EndpointAddress]

    def by_bdf(self) -> dict[str, EndpointAddress]:
        return {e.bdf: e for e in self.endpoints}

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order.value,
            "endpoints": [e.to_dict() for e in self.endpoints],
            "cards": [c.to_dict() for c in self.cards],
        }


def format_position(key: tuple[int, ...]) -> str:
    """``(domain, root_bus, devfn, ...)`` -> ``0000:00/01.1/00.0``: the lspci -PP path without
    the bus numbers below the root bus (those shift when cards are added; positions do not)."""
    domain, root_bus, *devfns = key
    path = "/".join(f"{d >> 3:02x}.{d & 7:x}" for d in devfns)
    return f"{domain:04x}:{root_bus:02x}/{path}"


def compute_addresses(topo: Topology, order: AddressOrder | str = AddressOrder.POSITION) -> AddressMap:
    """The address map of `topo`. Linear in the number of functions.

    Raises:
        AddressOrderError: ``slot`` or ``serial`` order while some card lacks that fact.
    """
    from accelctl.topology.cards import position_key

    order = AddressOrder(order)
    cards = _ordered_cards(topo.cards, order)
    functions = topo.functions
    card_rows: list[CardAddress] = []
    endpoint_rows: list[EndpointAddress] = []
    for new_index, card in enumerate(cards):
        card_rows.append(
            CardAddress(
                card=new_index,
                top=card.top,
                serial=card.serial,
                slot=card.slot,
                position=format_position(card.position or position_key(card.top, functions)),
                vendor_id=hex_id(card.vendor_id),
                device_id=hex_id(card.device_id),
                model=card.model,
                endpoints=tuple(card.endpoints),
            )
        )
        for ep_index, bdf in enumerate(card.endpoints):
            endpoint_rows.append(
                EndpointAddress(
                    bdf=bdf,
                    card=new_index,
                    endpoint=ep_index,
                    global_id=len(endpoint_rows),
                    serial=functions[bdf].serial,
                    position=format_position(position_key(bdf, functions)),
                )
            )
    return AddressMap(order, card_rows, endpoint_rows)


def _ordered_cards(cards: list[Card], order: AddressOrder) -> list[Card]:
    # topology already sorts cards by physical position; the other orders re-sort, with the
    # position as tie-break so equal slots/serials (cards in one slot) stay deterministic.
    if order is AddressOrder.POSITION:
        return sorted(cards, key=lambda c: c.position)
    if order is AddressOrder.SLOT:
        missing = [c.name for c in cards if _slot_number(c.slot) is None]
        if missing:
            raise AddressOrderError(order, missing)
        return sorted(cards, key=lambda c: (_slot_number(c.slot), c.position))
    missing = [c.name for c in cards if not c.serial]
    if missing:
        raise AddressOrderError(order, missing)
    return sorted(cards, key=lambda c: (c.serial, c.position))


def _slot_number(slot: str | None) -> tuple[int, str] | None:
    """Slot names are usually numbers ("3"); sort numerically, names like "3-1" by their parts."""
    if not slot:
        return None
    head = slot.split("-", 1)[0]
    return (int(head), slot) if head.isdigit() else (1 << 30, slot)

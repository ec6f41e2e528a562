"""Compare the machine now with a persisted address map, card by card.

Cards are matched by identity: the serial where the card has one, else its physical position
plus vendor:device. Each mismatch is one Difference:

* ``swapped``: same serial, new physical position (the card was moved to another slot);
* ``moved``: same card at the same position, but its logical address changed (card index,
  global ids) or its BDFs did (bus numbers shifted because a card was added or removed);
* ``endpoints_changed``: same card, another number of endpoints;
* ``vanished``: in the persisted map, not on the machine;
* ``appeared``: on the machine, not in the persisted map.

Linear: two dict lookups per card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelctl.addressing.addresses import AddressMap, CardAddress


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    #: ``cardN`` as persisted (None for ``appeared``)
    before: str | None
    #: ``cardN`` now (None for ``vanished``)
    after: str | None
    identity: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "identity": self.identity,
            "message": self.message,
        }


def diff_maps(persisted: AddressMap, now: AddressMap) -> list[Difference]:
    """Differences between a persisted map and the current one, persisted card order first."""
    now_by_serial = {c.serial: c for c in now.cards if c.serial}
    now_by_identity = {c.identity: c for c in now.cards}
    first_before = _first_global_ids(persisted)
    first_after = _first_global_ids(now)
    matched: set[str] = set()
    out: list[Difference] = []
    for old in persisted.cards:
        new = now_by_serial.get(old.serial) if old.serial else now_by_identity.get(old.identity)
        if new is None:
            out.append(Difference("vanished", old.name, None, old.identity,
                                  f"{old.name} ({_where(old)}) is gone"))
            continue
        matched.add(new.top)
        out.extend(_compare(old, new, first_before, first_after))
    for new in now.cards:
        if new.top not in matched:
            out.append(Difference("appeared", None, new.name, new.identity,
                                  f"{new.name} ({_where(new)}) is new"))
    return out


def _compare(
    old: CardAddress, new: CardAddress, first_before: dict[int, int], first_after: dict[int, int]
) -> list[Difference]:
    if old.position != new.position:
        return [Difference("swapped", old.name, new.name, old.identity,
                           f"card with serial {old.serial} moved from {_where(old)} to {_where(new)}"
                           + (f"; it is now {new.name}" if old.card != new.card else ""))]
    if len(old.endpoints) != len(new.endpoints):
        return [Difference("endpoints_changed", old.name, new.name, old.identity,
                           f"{old.name} had {len(old.endpoints)} endpoints, {new.name} has {len(new.endpoints)}")]
    changes = []
    if old.card != new.card:
        changes.append(f"index {old.name} -> {new.name}")
    if old.endpoints != new.endpoints:
        changes.append(f"BDFs {', '.join(old.endpoints)} -> {', '.join(new.endpoints)}")
    gid_before = _global_ids(first_before, old)
    gid_after = _global_ids(first_after, new)
    if gid_before != gid_after:
        changes.append(f"global ids {_ids(gid_before)} -> {_ids(gid_after)}")
    if not changes:
        return []
    return [Difference("moved", old.name, new.name, old.identity,
                       f"{old.name} at {old.position}: " + "; ".join(changes))]


def _first_global_ids(amap: AddressMap) -> dict[int, int]:
    """card index -> its first global id (a card's endpoints are contiguous in global-id order)."""
    first: dict[int, int] = {}
    for e in amap.endpoints:
        first.setdefault(e.card, e.global_id)
    return first


def _global_ids(first: dict[int, int], card: CardAddress) -> list[int]:
    start = first.get(card.card)
    return [] if start is None else list(range(start, start + len(card.endpoints)))


def _ids(ids: list[int]) -> str:
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 1 else (str(ids[0]) if ids else "-")


def _where(card: CardAddress) -> str:
    slot = f"slot {card.slot}, " if card.slot else ""
    return f"{slot}{card.position}, {card.top}"

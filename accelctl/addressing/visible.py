"""``ACCELCTL_VISIBLE_DEVICES``: restrict which accelerator endpoints a process sees.

    ACCELCTL_VISIBLE_DEVICES=card0.ep1,3,0000:c1:00.0,00-11-22-33-44-55-66-77,card2

* Entries are separated by commas; each is any device name the resolver accepts (BDF, cardN,
  cardN.epM, global id, serial), resolved against the **whole machine** in the default
  physical-position numbering. ``cardN`` makes all of that card's endpoints visible.
* Unset: every endpoint is visible. Set but empty: **none** is (as CUDA does).
* An entry that is malformed, names nothing, is ambiguous, or names something that is not an
  accelerator endpoint or card is an error naming the entry: never "silently all devices", never
  "silently the ones before the bad entry".
* **No renumbering.** Visible endpoints keep their machine-wide ``card``, ``endpoint`` and
  ``global_id`` (so ``card3.ep1`` is the same silicon in every process, in logs, metrics and
  resets); the visible set is listed in global-id order, whatever the order of the entries.
  Code that wants CUDA-style ordinals uses the position in ``VisibleSet.endpoints``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelctl.addressing.addresses import AddressMap, EndpointAddress
from accelctl.errors import AccelError, InvalidAddressError

if TYPE_CHECKING:
    from accelctl.topology import Topology
    from accelctl.topology.listing import DeviceListing

VISIBLE_DEVICES_ENV = "ACCELCTL_VISIBLE_DEVICES"


@dataclass(frozen=True, slots=True)
class VisibleSet:
    """The endpoints a process may see, as the variable defined them."""

    spec: str
    #: visible endpoints in global-id order
    endpoints: tuple[EndpointAddress, ...]
    #: their BDFs, for O(1) membership tests (filled in from `endpoints`)
    bdfs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bdfs", frozenset(e.bdf for e in self.endpoints))

    def describe(self) -> str:
        return f"{VISIBLE_DEVICES_ENV}={self.spec!r}"

    def to_dict(self) -> dict[str, object]:
        return {"variable": VISIBLE_DEVICES_ENV, "value": self.spec, "endpoints": [e.name for e in self.endpoints]}


def parse_visible_devices(topo: Topology, spec: str, addresses: AddressMap) -> VisibleSet:
    """Resolve every entry of `spec` (the variable's value).

    Raises:
        InvalidAddressError: an entry is malformed, empty, or not an accelerator endpoint or card.
        DeviceNotFoundError / AmbiguousAddressError: an entry names nothing / several devices.
    """
    from accelctl.addressing.resolver import Resolver, ResolvedKind

    if not spec.strip():
        return VisibleSet(spec, ())
    resolver = Resolver(topo, addresses=addresses, visible=None)
    chosen: dict[str, EndpointAddress] = {}
    for position, entry in enumerate(spec.split(",")):
        where = f"entry {position + 1} of {VISIBLE_DEVICES_ENV}"
        if not entry.strip():
            raise InvalidAddressError(entry, f"{where} is empty (stray comma?)")
        try:
            r = resolver.resolve(entry)
        except AccelError as err:
            err.message = f"{VISIBLE_DEVICES_ENV}: {err.message}"
            err.args = (err.message,)
            raise
        if r.kind is ResolvedKind.FUNCTION:
            raise InvalidAddressError(
                entry, f"{where}: {r.function.id} is a {r.function.kind.value}, not an accelerator endpoint or card"
            )
        for ep in r.endpoints:
            chosen[ep.bdf] = ep
    return VisibleSet(spec, tuple(sorted(chosen.values(), key=lambda e: e.global_id)))


def visible_set_from_env(
    topo: Topology, addresses: AddressMap, *, env: Mapping[str, str] | None = None
) -> VisibleSet | None:
    """The VisibleSet from ``ACCELCTL_VISIBLE_DEVICES`` in `env` (os.environ), None when unset."""
    value = (os.environ if env is None else env).get(VISIBLE_DEVICES_ENV)
    if value is None:
        return None
    return parse_visible_devices(topo, value, addresses)


def restrict(addresses: AddressMap, visible: VisibleSet | None) -> AddressMap:
    """The map with only visible endpoints (and cards with at least one); numbers unchanged."""
    if visible is None:
        return addresses
    keep = visible.bdfs
    endpoints = [e for e in addresses.endpoints if e.bdf in keep]
    cards = [c for c in addresses.cards if any(b in keep for b in c.endpoints)]
    return AddressMap(addresses.order, cards, endpoints)


def visible_listing(
    topo: Topology, *, include_all: bool = False, env: Mapping[str, str] | None = None
) -> DeviceListing:
    """What `accelctl list` shows: the devices, restricted to ACCELCTL_VISIBLE_DEVICES when set.

    Raises:
        InvalidAddressError / DeviceNotFoundError / AmbiguousAddressError: a bad entry in the
            variable (never silently "all devices").
    """
    from accelctl.addressing.addresses import compute_addresses
    from accelctl.topology.listing import list_devices

    visible = visible_set_from_env(topo, compute_addresses(topo), env=env)
    return list_devices(topo, include_all=include_all, visible=visible.bdfs if visible else None)

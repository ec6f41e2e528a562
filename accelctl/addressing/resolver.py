"""The one resolver every command uses to turn a device name into devices.

    r = resolve(topo, "card2.ep1")          # Resolved(kind=ENDPOINT, ...)
    fn = resolve_endpoint(topo, "7")        # the PciFunction of global id 7

Names use the default physical-position numbering (docs/addressing.md) unless an AddressMap is
passed. When ``ACCELCTL_VISIBLE_DEVICES`` is set, accelerator endpoints outside the visible set
are not found (names keep their machine-wide numbers; see accelctl.addressing.visible).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accelctl.addressing.addresses import AddressMap, AddressOrder, EndpointAddress, compute_addresses
from accelctl.addressing.names import DeviceName, NameForm, parse_device_name
from accelctl.errors import AmbiguousAddressError, DeviceNotFoundError
from accelctl.topology.model import endpoint_name

if TYPE_CHECKING:
    from accelctl.addressing.visible import VisibleSet
    from accelctl.topology import Card, PciFunction, Topology


class ResolvedKind(str, enum.Enum):
    #: one accelerator endpoint (a physical function that belongs to a card)
    ENDPOINT = "endpoint"
    #: a whole card: ``cardN``, or the serial of a card's top function
    CARD = "card"
    #: any other PCI function (a switch port, a NIC, a VF), named by BDF or serial
    FUNCTION = "function"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Resolved:
    """What a name resolved to."""

    name: str
    kind: ResolvedKind
    #: the function named (ENDPOINT, FUNCTION) or the card's top function (CARD)
    function: PciFunction
    card: Card | None = None
    #: the accelerator endpoints selected: one for ENDPOINT, all the card's for CARD, none for a
    #: FUNCTION that is not an endpoint
    endpoints: list[EndpointAddress] = field(default_factory=list)

    @property
    def bdfs(self) -> list[str]:
        """BDFs of the selected endpoints, else of the function itself."""
        return [e.bdf for e in self.endpoints] or [self.function.id]


class Resolver:
    """Resolves many names against one topology without recomputing the map (near-linear use)."""

    def __init__(
        self,
        topo: Topology,
        *,
        addresses: AddressMap | None = None,
        visible: VisibleSet | None | object = ...,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``visible=...`` (the default) reads ACCELCTL_VISIBLE_DEVICES from `env` (os.environ);
        ``visible=None`` ignores it; a VisibleSet is used as given."""
        self.topo = topo
        self.addresses = addresses if addresses is not None else compute_addresses(topo)
        self._by_bdf = self.addresses.by_bdf()
        self._by_name = {e.name: e for e in self.addresses.endpoints}
        self._card_by_top = {c.top: c for c in topo.cards}
        self._topo_card_of: dict[int, Card] = {}
        # An AddressMap in another order renumbers cards; map its numbers back to topology cards.
        for row in self.addresses.cards:
            self._topo_card_of[row.card] = self._card_by_top[row.top]
        self._serials: dict[str, list[str]] | None = None
        if visible is ...:
            from accelctl.addressing.visible import visible_set_from_env

            # the variable is always read in position order (docs/addressing.md), whatever map
            # this resolver names devices with
            position_map = self.addresses if self.addresses.order is AddressOrder.POSITION else compute_addresses(topo)
            visible = visible_set_from_env(topo, position_map, env=env)
        self.visible: VisibleSet | None = visible  # type: ignore[assignment]

    # --- public ------------------------------------------------------------------------------

    def resolve(self, text: str) -> Resolved:
        """Raises InvalidAddressError, DeviceNotFoundError or AmbiguousAddressError."""
        name = parse_device_name(text)
        resolved = self._lookup(name)
        self._check_visible(resolved)
        return resolved

    def resolve_endpoint(self, text: str) -> PciFunction:
        """The single accelerator endpoint `text` names. A card with exactly one endpoint counts.

        Raises:
            AmbiguousAddressError: a card with several endpoints (candidates listed).
            DeviceNotFoundError: no such device, or it is not an accelerator endpoint.
            InvalidAddressError: malformed name.
        """
        r = self.resolve(text)
        if r.kind is ResolvedKind.FUNCTION:
            raise DeviceNotFoundError(
                text, f"{r.function.id} is a {r.function.kind.value}, not an accelerator endpoint"
            )
        if len(r.endpoints) != 1:
            raise AmbiguousAddressError(text, [f"{e.name} ({e.bdf})" for e in r.endpoints])
        return self.topo.functions[r.endpoints[0].bdf]

    # --- lookups -----------------------------------------------------------------------------

    def _lookup(self, name: DeviceName) -> Resolved:
        form = name.form
        if form is NameForm.BDF:
            assert name.bdf is not None
            return self._function(name.text, str(name.bdf))
        if form is NameForm.SHORT_BDF:
            return self._short_bdf(name)
        if form is NameForm.CARD:
            return self._card_resolved(name.text, name.card)  # type: ignore[arg-type]
        if form is NameForm.CARD_ENDPOINT:
            ep = self._by_name.get(endpoint_name(name.card, name.endpoint))
            if ep is None:
                card = self._card(name.text, name.card)  # type: ignore[arg-type]
                raise DeviceNotFoundError(
                    name.text, f"{card.name} has {len(card.endpoints)} endpoints (ep0..ep{len(card.endpoints) - 1})"
                )
            return self._endpoint(name.text, ep)
        if form is NameForm.GLOBAL_ID:
            gid = name.global_id or 0
            eps = self.addresses.endpoints
            if gid >= len(eps):
                raise DeviceNotFoundError(
                    name.text, f"global ids run 0..{len(eps) - 1}" if eps else "there are no accelerator endpoints"
                )
            return self._endpoint(name.text, eps[gid])
        return self._serial(name)

    def _endpoint(self, text: str, ep: EndpointAddress) -> Resolved:
        fn = self.topo.functions[ep.bdf]
        return Resolved(text, ResolvedKind.ENDPOINT, fn, self._topo_card_of.get(ep.card), [ep])

    def _function(self, text: str, bdf: str) -> Resolved:
        ep = self._by_bdf.get(bdf)
        if ep is not None:
            return self._endpoint(text, ep)
        fn = self.topo.functions.get(bdf)
        if fn is None:
            raise DeviceNotFoundError(text, f"no PCI function {bdf}")
        card = self.topo.cards[fn.card] if fn.card is not None and fn.card < len(self.topo.cards) else None
        return Resolved(text, ResolvedKind.FUNCTION, fn, card)

    def _short_bdf(self, name: DeviceName) -> Resolved:
        assert name.bdf is not None
        b = name.bdf
        tail = f":{b.bus:02x}:{b.device:02x}.{b.function:x}"
        # Short BDFs are rare in scripts and domains are few: look in each domain present.
        domains = sorted({h.domain for h in self.topo.host_bridges.values()})
        hits = [f"{d:04x}{tail}" for d in domains if f"{d:04x}{tail}" in self.topo.functions]
        if not hits:
            raise DeviceNotFoundError(name.text, f"no PCI function ????{tail} in any domain")
        if len(hits) > 1:
            raise AmbiguousAddressError(name.text, hits)
        return self._function(name.text, hits[0])

    def _card(self, text: str, index: int) -> Card:
        card = self._topo_card_of.get(index)
        if card is None:
            n = len(self.addresses.cards)
            raise DeviceNotFoundError(text, f"there are {n} cards" + (f" (card0..card{n - 1})" if n else ""))
        return card

    def _card_resolved(self, text: str, index: int) -> Resolved:
        card = self._card(text, index)
        row = self.addresses.cards[index]
        eps = [self._by_bdf[b] for b in row.endpoints]
        return Resolved(text, ResolvedKind.CARD, self.topo.functions[card.top], card, eps)

    def _serial(self, name: DeviceName) -> Resolved:
        if self._serials is None:
            self._serials = {}
            for fn in self.topo.functions.values():
                if fn.serial:
                    self._serials.setdefault(fn.serial, []).append(fn.id)
        hits = sorted(self._serials.get(name.serial or "", []))
        if not hits:
            raise DeviceNotFoundError(name.text, "no device reports that serial number")
        if len(hits) > 1:
            labels = [f"{self._by_bdf[h].name} ({h})" if h in self._by_bdf else h for h in hits]
            raise AmbiguousAddressError(name.text, labels)
        bdf = hits[0]
        card = self._card_by_top.get(bdf)
        if card is not None and bdf not in self._by_bdf:
            # the serial of a card's own switch: the whole card
            row = next(r for r in self.addresses.cards if r.top == bdf)
            return self._card_resolved(name.text, row.card)
        return self._function(name.text, bdf)

    def _check_visible(self, r: Resolved) -> None:
        if self.visible is None or not r.endpoints:
            return
        shown = self.visible.bdfs
        hidden = [e for e in r.endpoints if e.bdf not in shown]
        if not hidden:
            return
        if r.kind is ResolvedKind.CARD and len(hidden) < len(r.endpoints):
            # a partly visible card: keep what the process may see
            r.endpoints = [e for e in r.endpoints if e.bdf in shown]
            return
        raise DeviceNotFoundError(
            r.name, f"{hidden[0].name} ({hidden[0].bdf}) is not visible: {self.visible.describe()}"
        )


def resolve(topo: Topology, name: str, **options: object) -> Resolved:
    """Resolve one device name (see accelctl.addressing.names for the forms).

    Raises:
        InvalidAddressError: `name` is no accepted form.
        DeviceNotFoundError: nothing matches (or it is hidden by ACCELCTL_VISIBLE_DEVICES).
        AmbiguousAddressError: several devices match; ``.candidates`` lists them.
    """
    return Resolver(topo, **options).resolve(name)  # type: ignore[arg-type]


def resolve_endpoint(topo: Topology, name: str, **options: object) -> PciFunction:
    """The single accelerator endpoint `name` names (errors as for `Resolver.resolve_endpoint`)."""
    return Resolver(topo, **options).resolve_endpoint(name)  # type: ignore[arg-type]

"""Presence: are the cards and endpoints there (against the manifest, or against peers)?"""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.topology.model import Card, CardLayout, NodeKind

#: Subject of findings about the machine as a whole (no single node to blame).
MACHINE = "machine"


def _id_text(vendor: int | None, device: int | None) -> str:
    return f"{vendor or 0:04x}:{device or 0:04x}"


def no_accelerators(ctx: RuleContext) -> Iterator[Finding]:
    ctx.checked["accelerator_endpoints"] = len(ctx.accelerators)
    ctx.checked["cards"] = len(ctx.topo.cards)
    if not ctx.accelerators:
        yield Finding(
            "NO_ACCELERATORS", Severity.INFO, MACHINE,
            f"no accelerator endpoints found among {len(ctx.topo.functions)} PCI functions: "
            "nothing to check",
            "if the cards are not of an accelerator class (docs/accelerators.md), name them with "
            "--accel-id VVVV:DDDD (or VVVV:*, class:CCSS) or $ACCELCTL_ACCEL_IDS",
        )


def card_counts(ctx: RuleContext) -> Iterator[Finding]:
    """Card counts against ``[expect] cards`` and each ``[[model]] cards``."""
    m = ctx.manifest
    if m is None:
        return
    cards = ctx.topo.cards
    if m.cards is not None and len(cards) != m.cards:
        fewer = len(cards) < m.cards
        yield Finding(
            "CARD_COUNT_MISMATCH", Severity.ERROR if fewer else Severity.WARNING, MACHINE,
            f"found {len(cards)} accelerator cards, the manifest expects {m.cards}",
            _missing_hint() if fewer else "update the manifest if the extra cards are intended",
        )
    for model in m.models:
        if model.cards is None:
            continue
        have = sum(1 for c in cards if (c.vendor_id, c.device_id) == (model.vendor_id, model.device_id))
        if have != model.cards:
            fewer = have < model.cards
            yield Finding(
                "CARD_COUNT_MISMATCH", Severity.ERROR if fewer else Severity.WARNING, MACHINE,
                f"found {have} cards of model {model.id_text}, the manifest expects {model.cards}",
                _missing_hint() if fewer else "update the manifest if the extra cards are intended",
            )


def _missing_hint() -> str:
    return ("look for LINK_DOWN, BUS_NUMBERS_EXHAUSTED and DEVICE_INACCESSIBLE findings; check "
            "seating and power, then the kernel log for the slot")


def card_entries(ctx: RuleContext) -> Iterator[Finding]:
    """Each ``[[card]]`` of the manifest against the card found at its port or slot."""
    m = ctx.manifest
    if m is None or not m.card_entries:
        return
    by_port = {c.port: c for c in ctx.topo.cards if c.port}
    by_slot = {c.slot: c for c in ctx.topo.cards if c.slot}
    for entry in m.card_entries:
        card = by_port.get(entry.port) if entry.port else by_slot.get(entry.slot)
        if card is None:
            port = ctx.topo.functions.get(entry.port or "")
            if port is not None and port.accessible and ctx.link_partner(port) is None:
                continue  # an empty existing port: LINK_DOWN reports it, on the port
            yield Finding(
                "CARD_MISSING", Severity.ERROR, entry.port or MACHINE,
                f"the manifest expects a card at {entry.where} (manifest line {entry.line}), "
                + ("but that port does not exist" if entry.port else "but no card is in that slot"),
                "check that the manifest names this machine's ports (accelctl topology), then seating, "
                "power and the BIOS bifurcation settings for that slot",
            )
            continue
        yield from _compare_card(ctx, card, entry)


def _compare_card(ctx: RuleContext, card: Card, entry) -> Iterator[Finding]:  # type: ignore[no-untyped-def]
    name = f"{card.name} at {entry.where}"
    if entry.vendor_id is not None and (card.vendor_id, card.device_id) != (entry.vendor_id, entry.device_id):
        yield Finding(
            "CARD_MISMATCH", Severity.ERROR, card.top,
            f"{name} is {_id_text(card.vendor_id, card.device_id)} ({card.model}), the manifest "
            f"expects {_id_text(entry.vendor_id, entry.device_id)}",
            "a different card is in this slot: swap it back or update the manifest",
        )
    if entry.numa_node is not None and card.numa_node != entry.numa_node:
        yield Finding(
            "CARD_MISMATCH", Severity.ERROR, card.top,
            f"{name} is on NUMA node {card.numa_node if card.numa_node is not None else 'unknown'}, "
            f"the manifest expects node {entry.numa_node}",
            "the card sits below another socket than planned (wrong slot or riser), or firmware "
            "reports no NUMA node (numa_node = -1: a BIOS/ACPI SRAT problem)",
        )
    if entry.serial is not None and (card.serial or "").lower() != entry.serial:
        yield Finding(
            "CARD_MISMATCH", Severity.WARNING, card.top,
            f"{name} has serial {card.serial or 'unknown'}, the manifest expects {entry.serial}",
            "the card was swapped (RMA?) or serials are unreadable without root; update the manifest",
        )


def endpoints_missing(ctx: RuleContext) -> Iterator[Finding]:
    """Cards with fewer endpoints than the manifest says, or (without one) than their peers."""
    m = ctx.manifest
    peers: dict[tuple[int | None, int | None, CardLayout], int] = {}
    for card in ctx.topo.cards:
        key = (card.vendor_id, card.device_id, card.layout)
        peers[key] = max(peers.get(key, 0), len(card.endpoints))
    peer_count: dict[tuple[int | None, int | None, CardLayout], int] = {}
    for card in ctx.topo.cards:
        key = (card.vendor_id, card.device_id, card.layout)
        peer_count[key] = peer_count.get(key, 0) + 1
    for card in ctx.topo.cards:
        key = (card.vendor_id, card.device_id, card.layout)
        want = None
        source = ""
        if m is not None:
            want = m.endpoints_for(card.vendor_id, card.device_id, m.entry_for(card.port, card.slot))
            source = "the manifest expects"
        if want is None and peer_count[key] > 1:
            want, source = peers[key], f"other {card.model} cards have"
        have = len(card.endpoints)
        empty = _empty_card_ports(ctx, card)
        if want is None and empty:
            # On-card switch ports exist only to carry endpoints: an empty one is a missing endpoint.
            want, source = have + len(empty), "its on-card switch has ports for"
        if want is None or have >= want:
            continue
        where = f"; empty on-card port(s): {', '.join(empty)}" if empty else ""
        yield Finding(
            "ENDPOINT_MISSING", Severity.ERROR, card.top,
            f"{card.name} ({card.model}) has {have} endpoint(s), {source} {want}{where}",
            "an endpoint that does not enumerate is usually a failed chip or firmware on the card: "
            "power-cycle the machine (not just reboot); if it stays missing, RMA the card",
            tuple(empty),
        )


def _empty_card_ports(ctx: RuleContext, card: Card) -> list[str]:
    """On-card switch downstream ports with nothing below them: where the endpoint should be."""
    if card.layout is not CardLayout.SWITCH:
        return []
    fns = ctx.topo.functions
    return [
        f for f in card.functions
        if fns[f].kind is NodeKind.SWITCH_DOWNSTREAM and ctx.link_partner(fns[f]) is None
    ]

"""Links: downtrained (below both ends' capability), down (card present or expected, no link),
and below the manifest's minimum."""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import DOWNSTREAM_PORTS, RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.topology.links import LinkJudgement, all_links
from accelctl.topology.model import PciFunction


def _fmt(speed: float | None, width: int | None) -> str:
    s = "?" if speed is None else f"{speed:g} GT/s"
    w = "x?" if width is None else f"x{width}"
    return f"{s} {w}"


def _path_hops(ctx: RuleContext, endpoint: PciFunction, hops: dict[str, LinkJudgement]) -> list[LinkJudgement]:
    """The hops from `endpoint` up to its root port, nearest first."""
    out = []
    node = endpoint
    while node.parent is not None:
        parent = ctx.topo.functions.get(node.parent)
        if parent is None:
            break
        hop = hops.get(parent.id)
        if hop is not None:
            out.append(hop)
        node = parent
    return out


def _unjudged_links(ctx: RuleContext, links: dict[str, LinkJudgement]) -> None:
    """Say which links could not be judged and why (accelctl.topology.links has the rule)."""
    for fn in ctx.topo.functions.values():
        if fn.kind not in DOWNSTREAM_PORTS or not fn.accessible:
            continue
        link = links.get(fn.id)
        if link is not None:
            reason = link.unjudged_reason
            if reason is not None:
                ctx.could_not_check("LINK_DOWNTRAINED", link.device.id, reason)
        elif (device := ctx.link_partner(fn)) is not None:
            ctx.could_not_check("LINK_DOWNTRAINED", device.id,
                                "no link state: no link attributes and no readable PCIe capability")


def link_downtrained(ctx: RuleContext) -> Iterator[Finding]:
    hops = all_links(ctx.topo)
    bad = {pid: h for pid, h in hops.items() if h.downtrained}
    ctx.checked["links"] = len(hops)
    _unjudged_links(ctx, hops)
    if not bad:
        return
    limited: dict[str, list[str]] = {pid: [] for pid in bad}
    for ep in ctx.accelerators:
        for hop in _path_hops(ctx, ep, bad):
            limited[hop.port.id].append(ep.id)
    for pid, hop in bad.items():
        eps = limited[pid]
        now, cap = _fmt(hop.speed_gts, hop.width), _fmt(hop.cap_speed_gts, hop.cap_width)
        dev_link = hop.device.link
        ends = (f"port {_fmt(hop.port.link.max_speed_gts, hop.port.link.max_width)}, device "
                f"{_fmt(dev_link.max_speed_gts, dev_link.max_width) if dev_link else 'unknown'}")
        where = (f"; it limits {len(eps)} accelerator endpoint(s): {', '.join(ctx.label(e) for e in eps)}"
                 if eps else "")
        if hop.width_short:
            yield Finding(
                "LINK_DOWNTRAINED", Severity.ERROR, hop.device.id,
                f"link {hop.text} trained at {now}, both ends can do {cap} ({ends}){where}",
                "a lane-width drop is never power saving: reseat the card or cable, check the riser, "
                "retimer and slot for damage, then re-check",
                tuple(eps),
            )
        else:
            yield Finding(
                "LINK_DOWNTRAINED", Severity.WARNING, hop.device.id,
                f"link {hop.text} runs at {now}, both ends can do {cap} ({ends}){where}",
                "speed-only drops are normal for idle GPUs (ASPM/power saving): re-check under load; "
                "if it stays low, check signal integrity (retimers, risers) and BIOS link-speed settings",
                tuple(eps),
            )


def link_down(ctx: RuleContext) -> Iterator[Finding]:
    """A port that sees a card (slot presence) or that the manifest says holds one, with no link."""
    expected_ports = {c.port for c in ctx.manifest.card_entries if c.port} if ctx.manifest else set()
    seen = 0
    for fn in ctx.topo.functions.values():
        if fn.kind not in DOWNSTREAM_PORTS or not fn.accessible:
            continue
        if ctx.link_partner(fn) is not None:
            continue
        if fn.secondary_bus == 0 and not fn.subordinate_bus:
            continue  # no bus numbers: BUS_NUMBERS_EXHAUSTED explains the empty port
        seen += 1
        why = None
        if fn.slot_presence:
            why = "its slot reports a card present"
        elif fn.id in expected_ports:
            why = "the manifest expects a card below it"
        if why is None:
            continue
        link_state = "" if fn.link is None or not fn.link.width else f" (link reads {_fmt(fn.link.speed_gts, fn.link.width)})"
        yield Finding(
            "LINK_DOWN", Severity.ERROR, fn.id,
            f"port {fn.id} has no device below it but {why}{link_state}",
            "reseat the card and its power cables; check the slot's power and the link in the BMC "
            "log; if it appeared after a reset, try 'echo 1 > /sys/bus/pci/rescan'",
        )
    ctx.checked["empty_ports"] = seen


def link_below_manifest(ctx: RuleContext) -> Iterator[Finding]:
    """Every accelerator endpoint's path to its root port against the manifest's minimum link."""
    m = ctx.manifest
    if m is None:
        return
    hops = all_links(ctx.topo)
    cards = ctx.topo.cards
    checked = 0
    for ep in ctx.accelerators:
        card = cards[ep.card] if ep.card is not None else None
        entry = m.entry_for(card.port, card.slot) if card else None
        floor = m.link_for(ep.vendor_id, ep.device_id, entry)
        if floor.speed_gts is None and floor.width is None:
            continue
        checked += 1
        path = _path_hops(ctx, ep, hops)
        narrow = [h for h in path if floor.width is not None and h.width is not None and h.width < floor.width]
        slow = [h for h in path if floor.speed_gts is not None and h.speed_gts is not None
                and h.speed_gts < floor.speed_gts]
        if narrow:
            worst = min(narrow, key=lambda h: h.width or 0)
            yield Finding(
                "LINK_BELOW_MANIFEST", Severity.ERROR, ep.id,
                f"{ctx.label(ep.id)}: link {worst.text} is x{worst.width}, the manifest wants at least "
                f"x{floor.width}",
                "a narrow link is a seating, cabling or slot problem (or the card is in the wrong slot)",
                (worst.device.id,),
            )
        elif slow:
            worst = min(slow, key=lambda h: h.speed_gts or 0)
            capable = worst.cap_speed_gts is None or worst.cap_speed_gts >= (floor.speed_gts or 0)
            yield Finding(
                "LINK_BELOW_MANIFEST", Severity.WARNING if capable else Severity.ERROR, ep.id,
                f"{ctx.label(ep.id)}: link {worst.text} runs at {worst.speed_gts:g} GT/s, the manifest "
                f"wants at least {floor.speed_gts:g} GT/s"
                + ("" if capable else f" and its ends can only do {worst.cap_speed_gts:g} GT/s"),
                "idle accelerators lower their link speed: re-check under load"
                if capable else "the hardware on this path cannot reach the speed: wrong slot, an older "
                "switch or riser, or a BIOS link-speed limit",
                (worst.device.id,),
            )
    ctx.checked["manifest_links"] = checked

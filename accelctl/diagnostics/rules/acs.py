"""ACS: request/completion redirect or egress control on switch ports between accelerator cards.

Peer traffic between two downstream ports of one switch is redirected up to the root complex
(or blocked) when the ingress port has RR/CR/EC set; only the ports of the switch where two cards'
paths meet matter, so the rule looks at each switch's downstream ports once.
"""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.pci.regs import ACS_P2P_BLOCKING, AcsBit
from accelctl.topology.model import card_name


def _cards_below(ctx: RuleContext) -> dict[str, set[int]]:
    """Port id -> indices of accelerator cards below it, from one walk up per endpoint."""
    out: dict[str, set[int]] = {}
    fns = ctx.topo.functions
    for ep in ctx.accelerators:
        if ep.card is None:
            continue
        node = fns.get(ep.parent or "")
        while node is not None:
            out.setdefault(node.id, set()).add(ep.card)
            node = fns.get(node.parent or "")
    return out


def acs_p2p_blocked(ctx: RuleContext) -> Iterator[Finding]:
    below = _cards_below(ctx)
    fns = ctx.topo.functions
    judged = 0
    for sw in ctx.topo.switches:
        ports = [(p, below.get(p, set())) for p in sw.downstream]
        with_cards = [(p, cards) for p, cards in ports if cards]
        all_cards = set().union(*(c for _, c in with_cards)) if with_cards else set()
        if len(all_cards) < 2:
            continue  # one card or none below this switch: nobody to talk to across it
        judged += 1
        for port_id, cards in with_cards:
            acs = fns[port_id].acs
            if acs is None and "capabilities" in fns[port_id].unknown:
                ctx.could_not_check("ACS_P2P_BLOCKED", port_id,
                                    "ACS registers unreadable (config space readable only to 64 bytes)")
                continue
            if acs is None or not acs.p2p_blocked:
                continue
            others = sorted(all_cards - cards) or sorted(all_cards)
            bits = "/".join(b.name or "?" for b in AcsBit if acs.control & b & ACS_P2P_BLOCKING)
            mine = ", ".join(card_name(c) for c in sorted(cards))
            yield Finding(
                "ACS_P2P_BLOCKED", Severity.WARNING, port_id,
                f"switch port {port_id} has ACS {bits} enabled: peer-to-peer from {mine} to "
                f"{', '.join(card_name(c) for c in others)} under switch {sw.upstream} is redirected "
                "through the root complex",
                "for P2P between cards (NCCL/RCCL), disable ACS on the switch ports in the BIOS "
                "(or with setpci at boot) when IOMMU isolation between these devices is not needed",
                tuple(ctx.topo.cards[c].top for c in others),
            )
    ctx.checked["switches_with_several_cards"] = judged

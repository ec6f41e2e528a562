"""What every rule gets: the topology, the manifest, and indexes built once in linear time.

Rules must stay near-linear in the number of functions, so anything several rules need
(accelerator endpoints, the card of each node, names) is computed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accelctl.topology.links import link_partner
from accelctl.topology.model import NodeKind, PciFunction

if TYPE_CHECKING:
    from accelctl.diagnostics.manifest import Manifest
    from accelctl.topology import Topology

#: Ports whose link goes down to a child device: the place to judge a link from.
DOWNSTREAM_PORTS = (NodeKind.ROOT_PORT, NodeKind.SWITCH_DOWNSTREAM)


@dataclass
class RuleContext:
    topo: Topology
    manifest: Manifest | None = None
    level: int = 3
    #: accelerator physical functions, sorted by BDF
    accelerators: list[PciFunction] = field(default_factory=list)
    #: endpoint id -> "cardN.epM"
    names: dict[str, str] = field(default_factory=dict)
    #: rule family -> what it looked at (for the report's `checked`)
    checked: dict[str, object] = field(default_factory=dict)
    #: (code, reason) -> subjects a rule could not judge, for the report's `not_checked`
    not_checked: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, topo: Topology, manifest: Manifest | None, level: int) -> RuleContext:
        ctx = cls(topo=topo, manifest=manifest, level=level)
        ctx.accelerators = topo.accelerators()
        ctx.names = topo.endpoint_names()
        for card in topo.cards:
            ctx.names.setdefault(card.top, card.name)
        return ctx

    def could_not_check(self, code: str, subject: str, reason: str) -> None:
        """Record that the check behind `code` could not be made on `subject`, and why (a fact
        is missing: no link files, config readable only to 64 bytes, ...)."""
        self.not_checked.setdefault((code, reason), []).append(subject)

    def label(self, node_id: str) -> str:
        """``0000:03:00.0 (card1.ep0)`` for people; the bare id when it has no logical name."""
        name = self.names.get(node_id)
        return f"{node_id} ({name})" if name else node_id

    def link_partner(self, port: PciFunction) -> PciFunction | None:
        """The device at the far end of a downstream port's link (accelctl.topology.links)."""
        return link_partner(self.topo, port.id)

"""Topology: the query API over one consistent snapshot of the PCI tree.

The tree is held as plain dicts (parent, children) because that is all a scan needs and it keeps
``accelctl topology --json`` fast; the networkx DiGraph (``Topology.graph``) is built on first
use, for path queries, exports and anything graph-shaped, since importing networkx alone costs
more than scanning a large machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from accelctl.errors import DeviceNotFoundError
from accelctl.sysfs.root import SysfsRoot
from accelctl.sysfs.scan import ScanWarning
from accelctl.topology import links
from accelctl.topology.walk import descendants
from accelctl.topology.model import Card, HostBridge, NodeKind, PciFunction, Switch, card_name

if TYPE_CHECKING:
    import networkx as nx

Node = PciFunction | HostBridge


def _node_sort_key(node: Node) -> tuple[int, int, int, int]:
    if isinstance(node, HostBridge):
        return (node.domain, node.bus, -1, -1)
    b = node.bdf
    return (b.domain, b.bus, b.device, b.function)


class Topology:
    """Host bridges, PCI functions, switches and cards of one machine (or fixture)."""

    def __init__(
        self,
        *,
        root: SysfsRoot | None,
        host_bridges: dict[str, HostBridge],
        functions: dict[str, PciFunction],
        children: dict[str, list[str]],
        switches: list[Switch],
        cards: list[Card],
        warnings: list[ScanWarning],
    ) -> None:
        self.root = root
        self.host_bridges = host_bridges
        self.functions = functions
        self.children = children
        self.switches = switches
        self.cards = cards
        self.warnings = warnings
        self._graph: nx.DiGraph | None = None

    # --- lookups -----------------------------------------------------------------------------

    def node(self, node_id: str) -> Node:
        """A node by id.

        Raises:
            DeviceNotFoundError: no such node.
        """
        node = self.functions.get(node_id) or self.host_bridges.get(node_id)
        if node is None:
            raise DeviceNotFoundError(node_id)
        return node

    def nodes(self) -> list[Node]:
        """Every node, sorted by PCI address (a host bridge before the functions on its bus)."""
        return sorted([*self.host_bridges.values(), *self.functions.values()], key=_node_sort_key)

    def accelerators(self) -> list[PciFunction]:
        """Accelerator physical functions, sorted by BDF."""
        return sorted(
            (
                f
                for f in self.functions.values()
                if f.is_accelerator and f.kind is not NodeKind.VIRTUAL_FUNCTION
            ),
            key=lambda f: f.bdf,
        )

    def endpoint_names(self) -> dict[str, str]:
        """Accelerator endpoint id -> ``cardN.epM``, for every card endpoint."""
        return {ep: name for card in self.cards for ep, name in zip(card.endpoints, card.endpoint_names())}

    def card(self, index: int) -> Card:
        """Raises DeviceNotFoundError when there is no such card."""
        if 0 <= index < len(self.cards):
            return self.cards[index]
        raise DeviceNotFoundError(card_name(index), f"there are {len(self.cards)} cards")

    def parent(self, node_id: str) -> Node | None:
        node = self.node(node_id)
        return self.node(node.parent) if node.parent else None

    def ancestors(self, node_id: str) -> Iterator[Node]:
        """From the parent up to the host bridge (and beyond, through VMD)."""
        node = self.node(node_id)
        while node.parent:
            node = self.node(node.parent)
            yield node

    def path(self, node_id: str) -> list[Node]:
        """From the topmost host bridge down to the node itself."""
        return [*reversed(list(self.ancestors(node_id))), self.node(node_id)]

    def subtree(self, node_id: str) -> list[str]:
        """Every node below `node_id` (not itself), depth-first in address order."""
        return descendants(self.children, node_id)

    def roots(self) -> list[HostBridge]:
        """Top-level host bridges (not nested in a VMD endpoint), sorted."""
        return sorted(
            (h for h in self.host_bridges.values() if h.parent is None), key=_node_sort_key
        )

    def switch_of(self, port_id: str) -> Switch | None:
        for sw in self.switches:
            if port_id == sw.upstream or port_id in sw.downstream:
                return sw
        return None

    def link_partner(self, fn_id: str) -> PciFunction | None:
        """The function at the other end of `fn_id`'s link (accelctl.topology.links)."""
        return links.link_partner(self, fn_id)

    def expected_link(self, fn_id: str) -> tuple[float | None, int | None] | None:
        """What the link should train to: the lower capability of its two ends, each None when
        either end's is unknown (None: no link). The rule: accelctl.topology.links."""
        link = links.link_of(self, fn_id)
        return None if link is None else (link.cap_speed_gts, link.cap_width)

    def link_downtrained(self, fn_id: str) -> bool | None:
        """Trained below what both ends can do: True, False, or None when that cannot be told
        (an end's capability unknown, or no link). The rule: accelctl.topology.links."""
        return links.is_downtrained(self, fn_id)

    # --- graph -------------------------------------------------------------------------------

    @property
    def graph(self) -> nx.DiGraph:
        """The tree as a networkx DiGraph (parent -> child edges; node attributes = to_dict)."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph()
            for node in self.nodes():
                g.add_node(node.id, **node.to_dict())
            for node in self.nodes():
                if node.parent:
                    g.add_edge(node.parent, node.id)
            self._graph = g
        return self._graph

    # --- export ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The body of `accelctl topology --json` (docs/json-schema.md; the CLI adds the envelope)."""
        return {
            "sysfs_root": str(self.root.path) if self.root else None,
            "nodes": [n.to_dict() for n in self.nodes()],
            "switches": [s.to_dict() for s in self.switches],
            "cards": [c.to_dict() for c in self.cards],
            "warnings": [w.to_dict() for w in self.warnings],
        }

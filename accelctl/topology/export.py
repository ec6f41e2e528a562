"""GraphML and DOT renderings of a topology (scalar node attributes only).

Both read the typed nodes (PciFunction, HostBridge and their Link) directly; the attribute names
and their spellings (ids as lowercase hex, the class as six digits) are those of the JSON
document, so a graph tool and a JSON reader see the same values.
"""

from __future__ import annotations

import io
from typing import Any

from accelctl.topology.graph import Node, Topology
from accelctl.topology.model import HostBridge, Link, card_name, hex_id


def _link_scalars(link: Link | None) -> dict[str, Any]:
    if link is None:
        return {}
    values = (("speed_gts", link.speed_gts), ("width", link.width),
              ("max_speed_gts", link.max_speed_gts), ("max_width", link.max_width))
    return {f"link_{key}": value for key, value in values if value is not None}


def _scalars(node: Node) -> dict[str, Any]:
    """Node attributes carried into GraphML/DOT: scalars a graph tool can show or filter on, in a
    fixed order, absent when unknown."""
    if isinstance(node, HostBridge):
        values: tuple[tuple[str, Any], ...] = (("kind", node.kind.value), ("numa_node", node.numa_node))
    else:
        cc = node.class_code
        values = (
            ("kind", node.kind.value),
            ("vendor_id", hex_id(node.vendor_id)),
            ("device_id", hex_id(node.device_id)),
            ("class_code", None if cc is None else f"{cc:06x}"),
            ("device_name", node.device_name),
            ("numa_node", node.numa_node),
            ("iommu_group", node.iommu_group),
            ("driver", node.driver),
            ("serial", node.serial),
            ("card", node.card),
            ("slot", node.slot),
        )
    out = {key: value for key, value in values if value is not None}
    if not isinstance(node, HostBridge):
        out.update(_link_scalars(node.link))
    return out


def _label(node: Node) -> str:
    """The DOT box text: id, kind, model (name, else vendor:device) and card."""
    lines = [node.id, node.kind.value]
    if not isinstance(node, HostBridge):
        if node.device_name or node.vendor_id is not None:
            lines.append(node.device_name or f"{hex_id(node.vendor_id)}:{hex_id(node.device_id)}")
        if node.card is not None:
            lines.append(card_name(node.card))
    return "\\n".join(lines)


def to_graphml(topo: Topology) -> str:
    import networkx as nx

    g = nx.DiGraph()
    for node in topo.nodes():
        g.add_node(node.id, **_scalars(node))
        if node.parent:
            g.add_edge(node.parent, node.id)
    buf = io.BytesIO()
    nx.write_graphml(g, buf)
    return buf.getvalue().decode()


def _dot_quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(topo: Topology) -> str:
    lines = ["digraph pci {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    nodes = topo.nodes()
    for node in nodes:
        attrs = {"label": _label(node), **_scalars(node)}
        rendered = ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())
        lines.append(f"  {_dot_quote(node.id)} [{rendered}];")
    for node in nodes:
        if node.parent:
            lines.append(f"  {_dot_quote(node.parent)} -> {_dot_quote(node.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"

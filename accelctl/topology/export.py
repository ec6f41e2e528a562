"""GraphML and DOT renderings of a topology (scalar node attributes only)."""

from __future__ import annotations

import io
from typing import Any

from accelctl.topology.graph import Topology
from accelctl.topology.model import card_name

#: Node attributes carried into GraphML/DOT: scalars a graph tool can show or filter on.
_SCALAR_KEYS = (
    "kind",
    "vendor_id",
    "device_id",
    "class_code",
    "device_name",
    "numa_node",
    "iommu_group",
    "driver",
    "serial",
    "card",
    "slot",
)


def _scalars(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: node[k] for k in _SCALAR_KEYS if node.get(k) is not None}
    link = node.get("link")
    if link:
        for key, value in link.items():
            if value is not None:
                out[f"link_{key}"] = value
    return out


def to_graphml(topo: Topology) -> str:
    import networkx as nx

    g = nx.DiGraph()
    for node in topo.nodes():
        g.add_node(node.id, **_scalars(node.to_dict()))
        if node.parent:
            g.add_edge(node.parent, node.id)
    buf = io.BytesIO()
    nx.write_graphml(g, buf)
    return buf.getvalue().decode()


def _dot_quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(topo: Topology) -> str:
    lines = ["digraph pci {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for node in topo.nodes():
        d = node.to_dict()
        label = [node.id, d["kind"]]
        if d.get("device_name") or d.get("vendor_id"):
            label.append(d.get("device_name") or f"{d['vendor_id']}:{d['device_id']}")
        if d.get("card") is not None:
            label.append(card_name(d["card"]))
        attrs = {"label": "\\n".join(label), **{k: v for k, v in _scalars(d).items()}}
        rendered = ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())
        lines.append(f"  {_dot_quote(node.id)} [{rendered}];")
    for node in topo.nodes():
        if node.parent:
            lines.append(f"  {_dot_quote(node.parent)} -> {_dot_quote(node.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"

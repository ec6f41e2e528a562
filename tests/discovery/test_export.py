"""GraphML and DOT carry what lspci decodes from the same tree: ids, class, NUMA node, IOMMU
group, driver, trained link width and the parent of every function."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pytest

from accelctl.sim.fixture import bundled_fixture_root
from accelctl.topology import build_topology
from accelctl.topology.export import to_dot, to_graphml
from tests.conftest import requires_lspci
from tests.discovery import lspci_oracle

pytestmark = requires_lspci

_DOT_NODE = re.compile(r'^\s+"([^"]+)" \[(.*)\];$', re.M)
_DOT_EDGE = re.compile(r'^\s+"([^"]+)" -> "([^"]+)";$', re.M)
_DOT_ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _graphml(tree: Path) -> nx.DiGraph:
    return nx.parse_graphml(to_graphml(build_topology(tree, names=False)))


def _dot(tree: Path) -> nx.DiGraph:
    text = to_dot(build_topology(tree, names=False))
    g = nx.DiGraph()
    for node, attrs in _DOT_NODE.findall(text):
        g.add_node(node, **dict(_DOT_ATTR.findall(attrs)))
    g.add_edges_from(_DOT_EDGE.findall(text))
    return g


def _disagreements(tree: Path, g: nx.DiGraph) -> list[str]:
    """Every fact lspci states that the graph states otherwise (values compared as text, the way
    both formats hold them)."""
    out = []
    seen = lspci_oracle.parse(tree)
    if set(seen) - set(g.nodes):
        out.append(f"missing nodes {sorted(set(seen) - set(g.nodes))}")
    for bdf, dev in sorted(seen.items()):
        if bdf not in g.nodes:
            continue
        attrs = {k: str(v) for k, v in g.nodes[bdf].items()}
        facts = {"vendor_id": dev.vendor, "device_id": dev.device, "numa_node": dev.numa,
                 "iommu_group": dev.iommu_group, "driver": dev.driver}
        if dev.lnksta is not None and dev.lnksta[1]:
            facts["link_width"] = dev.lnksta[1]
        for key, theirs in facts.items():
            if theirs is not None and attrs.get(key) != str(theirs):
                out.append(f"{bdf} {key}: lspci {theirs}, graph {attrs.get(key)}")
        if attrs.get("class_code", "")[:4] != dev.class_hex:
            out.append(f"{bdf} class: lspci {dev.class_hex}, graph {attrs.get('class_code')}")
        parents = list(g.predecessors(bdf))
        if dev.parent is not None and parents != [dev.parent]:
            out.append(f"{bdf} parent: lspci {dev.parent}, graph {parents}")
        if dev.parent is None and not (len(parents) == 1 and parents[0].startswith("pci")):
            out.append(f"{bdf} is on a root bus for lspci, below {parents} in the graph")
    return out


@pytest.mark.parametrize("name", ["two-socket", "legacy-kernel", "fault-nonroot", "flat-vmd", "fault-off-bus"])
@pytest.mark.parametrize("fmt", ["graphml", "dot"])
def test_exports_of_bundled_fixtures_agree_with_lspci(name, fmt):
    tree = Path(bundled_fixture_root(name))
    g = _graphml(tree) if fmt == "graphml" else _dot(tree)
    assert _disagreements(tree, g) == []
    assert nx.is_forest(g) and all(g.in_degree(n) <= 1 for n in g.nodes)


@pytest.mark.parametrize("fmt", ["graphml", "dot"])
def test_exports_of_real_machines_agree_with_lspci(real_roots, fmt):
    for name, tree in real_roots.items():
        g = _graphml(tree) if fmt == "graphml" else _dot(tree)
        assert _disagreements(tree, g) == [], name


def test_the_export_judge_can_fail():
    """A wrong attribute and a wrong edge are both caught."""
    tree = Path(bundled_fixture_root("two-socket"))
    g = _graphml(tree)
    g.nodes["0000:05:00.0"]["numa_node"] = 1
    g.remove_edge("0000:04:00.0", "0000:05:00.0")
    g.add_edge("0000:04:01.0", "0000:05:00.0")
    problems = _disagreements(tree, g)
    assert any("0000:05:00.0 numa_node" in p for p in problems)
    assert any("0000:05:00.0 parent" in p for p in problems)

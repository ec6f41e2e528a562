"""The pairwise matrix: for every pair of accelerator endpoints, the closest common point of
their PCIe paths, and whether PCIe peer-to-peer between them works (True, False or None when
that cannot be told), by which route and why (accelctl.topology.p2p judges).

Codes, nearest first (docs/matrix.md compares them with nvidia-smi topo -m):
  X     the endpoint itself
  CARD  both on the same physical card
  PIX   paths meet in one external switch (on-card switches do not count)
  PXB   paths cross several external switches, but no host bridge
  PHB   paths meet at a host bridge (same root complex / root bus)
  NODE  different host bridges, same NUMA node
  SYS   different NUMA nodes (or a NUMA node unknown)

This is the one pairwise computation in accelctl, and it runs over accelerator endpoints only:
each endpoint's path is computed once, then each pair costs one walk up a short chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelctl.topology.model import HostBridge, PciFunction
from accelctl.topology.p2p import P2PJudge

if TYPE_CHECKING:
    from accelctl.topology import Topology

LEVELS = ("X", "CARD", "PIX", "PXB", "PHB", "NODE", "SYS")


@dataclass(slots=True)
class _Path:
    endpoint: PciFunction
    #: ancestor ids, parent first, up to and including host bridges (VMD nests two)
    chain: list[str]
    index: dict[str, int]
    host_bridge: str | None
    numa: int | None


@dataclass(slots=True)
class TopologyMatrix:
    endpoints: list[str]
    names: list[str | None]
    matrix: list[list[str]]
    #: True / False / None (unknown), per pair
    p2p: list[list[bool | None]]
    #: accelctl.topology.p2p.FABRIC or HOST_BRIDGE, None when there is no P2P or the route is unknown
    p2p_route: list[list[str | None]]
    #: why, in words: the ACS bits on which port, the host-bridge rule
    p2p_reason: list[list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": list(LEVELS),
            "endpoints": [{"bdf": b, "name": n} for b, n in zip(self.endpoints, self.names)],
            "matrix": self.matrix,
            "p2p": self.p2p,
            "p2p_route": self.p2p_route,
            "p2p_reason": self.p2p_reason,
        }


def topology_matrix(topo: Topology, judge: P2PJudge | None = None) -> TopologyMatrix:
    """The matrix over `topo.accelerators()` (sorted by BDF). Quadratic in accelerator endpoints
    only; linear work per endpoint otherwise. `judge`: a P2PJudge that knows the CPU already
    (default: one over `topo` that reads it from the tree when a verdict needs it)."""
    endpoints = topo.accelerators()
    names = topo.endpoint_names()
    judge = judge or P2PJudge(topo)
    external = {sw.upstream for sw in topo.switches if not sw.on_card}
    paths = [_path(topo, ep) for ep in endpoints]
    matrix: list[list[str]] = []
    p2p: list[list[bool | None]] = []
    routes: list[list[str | None]] = []
    reasons: list[list[str]] = []
    for a in paths:
        matrix.append([_relation(topo, a, b, external) for b in paths])
        verdicts = [judge.judge(a.endpoint.id, b.endpoint.id) for b in paths]
        p2p.append([v.possible for v in verdicts])
        routes.append([v.route for v in verdicts])
        reasons.append([v.reason for v in verdicts])
    return TopologyMatrix([e.id for e in endpoints], [names.get(e.id) for e in endpoints], matrix, p2p,
                          routes, reasons)


def _path(topo: Topology, ep: PciFunction) -> _Path:
    chain = [n.id for n in topo.ancestors(ep.id)]
    host = next((n for n in chain if n in topo.host_bridges), None)
    numa = ep.numa_node
    if numa is None and host is not None:
        numa = topo.host_bridges[host].numa_node
    return _Path(ep, chain, {n: i for i, n in enumerate(chain)}, host, numa)


def _relation(topo: Topology, a: _Path, b: _Path, external: set[str]) -> str:
    if a.endpoint.id == b.endpoint.id:
        return "X"
    lca_b = next((i for i, n in enumerate(b.chain) if n in a.index), None)
    lca = b.chain[lca_b] if lca_b is not None else None
    if lca is None or isinstance(topo.host_bridges.get(lca), HostBridge):
        if lca is not None and lca == a.host_bridge:
            return "PHB"
        if a.numa is not None and a.numa == b.numa:
            return "NODE"
        return "SYS"
    if a.endpoint.card is not None and a.endpoint.card == b.endpoint.card:
        return "CARD"
    lca_a = a.index[lca]
    crossed = {n for n in a.chain[: lca_a + 1] if n in external}
    crossed |= {n for n in b.chain[: lca_b + 1] if n in external}
    return "PIX" if len(crossed) <= 1 else "PXB"

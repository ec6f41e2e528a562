"""The pairwise matrix: for every pair of accelerator endpoints, the closest common point of
their PCIe paths, and whether PCIe peer-to-peer between them stays below the host bridge.

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

if TYPE_CHECKING:
    from accelctl.topology import Topology

#: Version of the `accelctl topology matrix --json` document.
MATRIX_SCHEMA_VERSION = 1
LEVELS = ("X", "CARD", "PIX", "PXB", "PHB", "NODE", "SYS")
#: Codes whose traffic can stay inside the PCIe fabric (below any host bridge).
_FABRIC = frozenset({"X", "CARD", "PIX", "PXB"})


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
    p2p: list[list[bool]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": MATRIX_SCHEMA_VERSION,
            "levels": list(LEVELS),
            "endpoints": [{"bdf": b, "name": n} for b, n in zip(self.endpoints, self.names)],
            "matrix": self.matrix,
            "p2p": self.p2p,
        }


def topology_matrix(topo: Topology) -> TopologyMatrix:
    """The matrix over `topo.accelerators()` (sorted by BDF). Quadratic in accelerator endpoints
    only; linear work per endpoint otherwise."""
    endpoints = topo.accelerators()
    names = topo.endpoint_names()
    external = {sw.upstream for sw in topo.switches if not sw.on_card}
    paths = [_path(topo, ep) for ep in endpoints]
    matrix: list[list[str]] = []
    p2p: list[list[bool]] = []
    for a in paths:
        row, prow = [], []
        for b in paths:
            code, ok = _relation(topo, a, b, external)
            row.append(code)
            prow.append(ok)
        matrix.append(row)
        p2p.append(prow)
    return TopologyMatrix([e.id for e in endpoints], [names.get(e.id) for e in endpoints], matrix, p2p)


def _path(topo: Topology, ep: PciFunction) -> _Path:
    chain = [n.id for n in topo.ancestors(ep.id)]
    host = next((n for n in chain if n in topo.host_bridges), None)
    numa = ep.numa_node
    if numa is None and host is not None:
        numa = topo.host_bridges[host].numa_node
    return _Path(ep, chain, {n: i for i, n in enumerate(chain)}, host, numa)


def _relation(topo: Topology, a: _Path, b: _Path, external: set[str]) -> tuple[str, bool]:
    if a.endpoint.id == b.endpoint.id:
        return "X", True
    lca_b = next((i for i, n in enumerate(b.chain) if n in a.index), None)
    lca = b.chain[lca_b] if lca_b is not None else None
    if lca is None or isinstance(topo.host_bridges.get(lca), HostBridge):
        if lca is not None and lca == a.host_bridge:
            code = "PHB"
        elif a.numa is not None and a.numa == b.numa:
            code = "NODE"
        else:
            code = "SYS"
        return code, False  # through the root complex: not PCIe switch peer-to-peer
    lca_a = a.index[lca]
    if a.endpoint.card is not None and a.endpoint.card == b.endpoint.card:
        code = "CARD"
    else:
        crossed = {n for n in a.chain[: lca_a + 1] if n in external}
        crossed |= {n for n in b.chain[: lca_b + 1] if n in external}
        code = "PIX" if len(crossed) <= 1 else "PXB"
    # Peer requests are redirected where the two paths meet: at the ingress port just below the
    # common point on each side (the switch downstream ports, or the functions themselves for a
    # multi-function device). ACS on ports further down does not see peer traffic as peer.
    ingress = (a.chain[lca_a - 1] if lca_a > 0 else a.endpoint.id,
               b.chain[lca_b - 1] if lca_b > 0 else b.endpoint.id)
    blocked = any(_acs_blocks(topo, n) for n in ingress)
    return code, code in _FABRIC and not blocked


def _acs_blocks(topo: Topology, node_id: str) -> bool:
    fn = topo.functions.get(node_id)
    return fn is not None and fn.acs is not None and fn.acs.p2p_blocked

"""The inventory every fleet engine reads: one record per accelerator endpoint, built once from a
topology, the diagnostics report over it and the pairwise matrix.

Nothing here reads sysfs: a caller that wants fresh facts builds a new topology and a new
inventory (the device plugin does, once per poll).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelctl.topology.model import NodeKind

if TYPE_CHECKING:
    from accelctl.diagnostics.findings import Report
    from accelctl.diagnostics.matrix import TopologyMatrix
    from accelctl.topology import Topology

#: Diagnostic level the engines use by default: links, presence, AER, ACS, drivers (level 3 adds
#: bus-range and bridge-window consistency, which says nothing about a device's health).
FLEET_LEVEL = 2
_AER_CLASSES = ("correctable", "nonfatal", "fatal")


def link_generation(speed_gts: float | None) -> int | None:
    """PCIe generation of a link speed (2.5 GT/s -> 1 ... 64 GT/s -> 6), None when unknown."""
    from accelctl.pci.regs import GTS_SPEED

    return None if speed_gts is None else GTS_SPEED.get(speed_gts)


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """One accelerator endpoint (physical function) as the engines see it."""

    bdf: str
    #: cardN.epM
    name: str
    card: int
    endpoint: int
    global_id: int
    #: the endpoint's Device Serial Number, else its card's
    serial: str | None
    model: str
    vendor_id: str | None
    device_id: str | None
    #: None when the kernel does not know (it says -1); never -1 here
    numa_node: int | None
    #: the nearest host bridge, ``pci<domain>:<bus>`` (the matrix's PHB level)
    pcie_root: str | None
    #: upstream port of the nearest external (not on-card) switch above the endpoint
    external_switch: str | None
    link_speed_gts: float | None
    link_width: int | None
    #: a link on the way to the root port trained below what both of its ends can do
    downtrained: bool
    #: why the device cannot be used now (fell off the bus, link narrower than both ends, link
    #: down); empty when it can
    faults: tuple[str, ...]
    #: AER totals of the endpoint and of the port above it: class -> count (cumulative)
    aer_totals: dict[str, int]
    iommu_group: int | None
    driver: str | None
    #: its virtual functions, sorted by BDF
    virtual_functions: tuple[str, ...]

    @property
    def link_generation(self) -> int | None:
        return link_generation(self.link_speed_gts)


@dataclass(slots=True)
class Inventory:
    """The devices of one snapshot in global-id order, and what they were built from."""

    devices: list[FleetDevice]
    topology: Topology
    report: Report
    matrix: TopologyMatrix

    def by_bdf(self) -> dict[str, FleetDevice]:
        return {d.bdf: d for d in self.devices}

    def all_pairs_p2p(self) -> bool:
        """Every pair of distinct endpoints can do PCIe peer-to-peer. An unknown answer counts as
        no: a scheduler must not place P2P work on a guess. False with fewer than two."""
        n = len(self.matrix.endpoints)
        if n < 2:
            return False
        return all(self.matrix.p2p[i][j] is True for i in range(n) for j in range(n) if i != j)


def build_inventory(
    topo: Topology, *, report: Report | None = None, matrix: TopologyMatrix | None = None
) -> Inventory:
    """The inventory of `topo`. The report (level FLEET_LEVEL) and the matrix are computed when
    not given; pass them when the caller already has them."""
    from accelctl.addressing.addresses import compute_addresses
    from accelctl.diagnostics import run_diagnostics
    from accelctl.diagnostics.matrix import topology_matrix

    if report is None:
        report = run_diagnostics(topo, level=FLEET_LEVEL)
    if matrix is None:
        matrix = topology_matrix(topo)
    downtrained: set[str] = set()
    faults: dict[str, list[str]] = {}
    dead: set[str] = set()
    for f in report.findings:
        if f.code == "LINK_DOWNTRAINED":
            downtrained.update(f.related)
            if f.severity.value == "error":
                for ep in f.related:
                    faults.setdefault(ep, []).append(f"link narrower than both ends ({f.subject})")
        elif f.code == "DEVICE_INACCESSIBLE":
            dead.add(f.subject)
    external = {sw.upstream for sw in topo.switches if not sw.on_card}
    vfs: dict[str, list[str]] = {}
    for fn in topo.functions.values():
        if fn.kind is NodeKind.VIRTUAL_FUNCTION and fn.physfn is not None:
            vfs.setdefault(fn.physfn, []).append(fn.id)
    devices = []
    fns = topo.functions
    cards = topo.cards
    for addr in compute_addresses(topo).endpoints:
        fn = fns[addr.bdf]
        chain = list(topo.ancestors(fn.id))
        ids = [n.id for n in chain]
        ep_faults = list(faults.get(fn.id, ()))
        if not fn.accessible or dead.intersection(ids):
            ep_faults.insert(0, "not answering config reads (fell off the bus)")
        if fn.link is not None and fn.link.is_down:
            ep_faults.append("link down")
        card = cards[fn.card] if fn.card is not None else None
        devices.append(FleetDevice(
            bdf=fn.id,
            name=addr.name,
            card=addr.card,
            endpoint=addr.endpoint,
            global_id=addr.global_id,
            serial=fn.serial or (card.serial if card else None),
            model=fn.model,
            vendor_id=None if fn.vendor_id is None else f"{fn.vendor_id:04x}",
            device_id=None if fn.device_id is None else f"{fn.device_id:04x}",
            numa_node=_numa(topo, fn.numa_node, ids),
            pcie_root=next((i for i in ids if i in topo.host_bridges), None),
            external_switch=next((i for i in ids if i in external), None),
            link_speed_gts=fn.link.speed_gts if fn.link else None,
            link_width=fn.link.width if fn.link else None,
            downtrained=fn.id in downtrained,
            faults=tuple(ep_faults),
            aer_totals=_aer_totals(topo, fn.id),
            iommu_group=fn.iommu_group,
            driver=fn.driver,
            virtual_functions=tuple(sorted(vfs.get(fn.id, ()), key=lambda v: fns[v].bdf)),
        ))
    return Inventory(devices, topo, report, matrix)


def _numa(topo: Topology, own: int | None, ancestors: list[str]) -> int | None:
    if own is not None and own >= 0:
        return own
    for node_id in ancestors:
        hb = topo.host_bridges.get(node_id)
        if hb is not None and hb.numa_node is not None and hb.numa_node >= 0:
            return hb.numa_node
    return None


def _aer_totals(topo: Topology, bdf: str) -> dict[str, int]:
    """Cumulative AER totals seen at both ends of the endpoint's link."""
    from accelctl.sysfs.attrs import aer_total

    totals = dict.fromkeys(_AER_CLASSES, 0)
    fn = topo.functions[bdf]
    ends = [fn]
    port = topo.functions.get(fn.parent or "")
    if port is not None and port.kind.is_downstream_facing:
        ends.append(port)
    for end in ends:
        for cls in _AER_CLASSES:
            if end.aer and cls in end.aer:
                totals[cls] += aer_total(end.aer[cls])
    return totals

"""The topology's value objects: functions, host bridges, links, switches, cards.

Units are in the field names (``speed_gts``, ``size``in bytes); ids are canonical strings
(``dddd:bb:dd.f`` for functions, ``pciDDDD:BB`` for host bridges).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from accelctl.pci.bdf import Bdf
from accelctl.sysfs.attrs import Resource


class NodeKind(str, enum.Enum):
    HOST_BRIDGE = "host_bridge"
    ROOT_PORT = "root_port"
    SWITCH_UPSTREAM = "switch_upstream"
    SWITCH_DOWNSTREAM = "switch_downstream"
    ENDPOINT = "endpoint"
    RC_ENDPOINT = "rc_endpoint"
    RC_EVENT_COLLECTOR = "rc_event_collector"
    PCI_BRIDGE = "pci_bridge"
    #: a conventional (non-Express) PCI function that is not a bridge
    PCI_ENDPOINT = "pci_endpoint"
    VIRTUAL_FUNCTION = "virtual_function"

    def __str__(self) -> str:
        return self.value

    @property
    def is_downstream_facing(self) -> bool:
        """A port whose link goes down to a child device (its link is the child's link)."""
        return self in (NodeKind.ROOT_PORT, NodeKind.SWITCH_DOWNSTREAM)


def card_name(index: int) -> str:
    """A card's logical name, ``cardN`` (the one place that spells it)."""
    return f"card{index}"


def endpoint_name(card: int, endpoint: int) -> str:
    """An accelerator endpoint's logical name, ``cardN.epM`` (the one place that spells it)."""
    return f"card{card}.ep{endpoint}"


def hex_id(value: int | None, width: int = 4) -> str | None:
    """An id as lspci -n prints it: lowercase hex, no 0x; None stays None."""
    return None if value is None else f"{value:0{width}x}"


@dataclass(frozen=True, slots=True)
class Link:
    """A PCIe link as one end sees it: trained now vs what the end is capable of. Whether the
    link is downtrained is judged from both ends, in accelctl.topology.links."""

    speed_gts: float | None
    width: int | None
    max_speed_gts: float | None
    max_width: int | None

    @property
    def is_down(self) -> bool:
        """No link trained (width 0): an empty slot, or a link that failed."""
        return self.width == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "speed_gts": self.speed_gts,
            "width": self.width,
            "max_speed_gts": self.max_speed_gts,
            "max_width": self.max_width,
        }


#: A BAR or bridge window exactly as a line of the sysfs `resource` table gives it (index,
#: start, end, flags; `.size`, `.prefetchable`, `.is_64bit`; size 0 = unassigned or absent).
#: The parser's tuple is used as is: a large machine has tens of thousands of them.
Bar = Resource


@cache
def _acs_bits() -> tuple[tuple[int, str], ...]:
    """(bit, name) of every ACS control bit, as plain ints: combining IntFlag members makes a new
    enum object each time, and `topology --json` names the bits of every port."""
    from accelctl.pci.regs import AcsBit

    return tuple((int(b), b.name or "") for b in AcsBit)


@dataclass(slots=True)
class Acs:
    """Access Control Services on a port: capability and control bits (AcsBit)."""

    capability: int
    control: int

    @property
    def p2p_blocked(self) -> bool:
        from accelctl.pci.regs import ACS_P2P_BLOCKING

        return bool(self.control & ACS_P2P_BLOCKING)

    def to_dict(self) -> dict[str, Any]:
        control = self.control
        return {
            "capability": hex_id(self.capability),
            "control": hex_id(control),
            "enabled": [name for bit, name in _acs_bits() if control & bit],
            "p2p_blocked": self.p2p_blocked,
        }


@dataclass(slots=True)
class PciFunction:
    """One PCI function and everything the scan learned about it."""

    id: str
    bdf: Bdf
    parent: str | None
    kind: NodeKind
    path: str
    vendor_id: int | None = None
    device_id: int | None = None
    subsystem_vendor_id: int | None = None
    subsystem_device_id: int | None = None
    class_code: int | None = None
    revision: int | None = None
    vendor_name: str | None = None
    device_name: str | None = None
    link: Link | None = None
    numa_node: int | None = None
    iommu_group: int | None = None
    driver: str | None = None
    serial: str | None = None
    slot: str | None = None
    port_type: int | None = None
    secondary_bus: int | None = None
    subordinate_bus: int | None = None
    acs: Acs | None = None
    aer: dict[str, dict[str, int]] | None = None
    bars: tuple[Bar, ...] = ()
    #: bridge windows from the `resource` table: name -> (start, size)
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    sriov_total_vfs: int | None = None
    sriov_num_vfs: int | None = None
    physfn: str | None = None
    multifunction: bool | None = None
    config_bytes: int | None = None
    #: False when config space reads all ones (the device stopped answering)
    accessible: bool = True
    reset_methods: tuple[str, ...] | None = None
    power_state: str | None = None
    dpc_triggered: bool | None = None
    flr_capable: bool | None = None
    slot_presence: bool | None = None
    hotplug_capable: bool | None = None
    is_accelerator: bool = False
    #: the key of the rule that made it an accelerator (accelctl.topology.accel), else None
    accelerator_rule: str | None = None
    card: int | None = None
    #: facts that could not be read (attribute or register -> reason), for LIMITED_VISIBILITY
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def is_bridge(self) -> bool:
        return self.kind in (
            NodeKind.ROOT_PORT,
            NodeKind.SWITCH_UPSTREAM,
            NodeKind.SWITCH_DOWNSTREAM,
            NodeKind.PCI_BRIDGE,
        )

    @property
    def model(self) -> str:
        """Best human name: pci.ids device name, else ``vvvv:dddd``."""
        if self.device_name:
            return self.device_name
        return f"{hex_id(self.vendor_id) or '????'}:{hex_id(self.device_id) or '????'}"

    def to_dict(self) -> dict[str, Any]:
        # Written out flat (no hex_id/property calls per field): `topology --json` makes one of
        # these per function, thousands on a large machine.
        v, d, sv, sd, cc, rev = (
            self.vendor_id, self.device_id, self.subsystem_vendor_id, self.subsystem_device_id,
            self.class_code, self.revision,
        )
        link, sec, total_vfs = self.link, self.secondary_bus, self.sriov_total_vfs
        return {
            "id": self.id,
            "bdf": self.id,
            "parent": self.parent,
            "kind": self.kind.value,
            "vendor_id": None if v is None else f"{v:04x}",
            "device_id": None if d is None else f"{d:04x}",
            "subsystem_vendor_id": None if sv is None else f"{sv:04x}",
            "subsystem_device_id": None if sd is None else f"{sd:04x}",
            "class_code": None if cc is None else f"{cc:06x}",
            "revision": None if rev is None else f"{rev:02x}",
            "vendor_name": self.vendor_name,
            "device_name": self.device_name,
            "link": None if link is None else link.to_dict(),
            "numa_node": self.numa_node,
            "iommu_group": self.iommu_group,
            "driver": self.driver,
            "serial": self.serial,
            "card": self.card,
            "is_accelerator": self.is_accelerator,
            "accelerator_rule": self.accelerator_rule,
            "slot": self.slot,
            "bus_range": None if sec is None else {"secondary": sec, "subordinate": self.subordinate_bus},
            "acs": self.acs.to_dict() if self.acs else None,
            "aer": self.aer,
            "bars": [b.to_dict() for b in self.bars if b.size],
            "sriov": None if total_vfs is None else {"total_vfs": total_vfs, "num_vfs": self.sriov_num_vfs},
            "physfn": self.physfn,
            "accessible": self.accessible,
            "config_bytes": self.config_bytes,
            "reset_methods": list(self.reset_methods) if self.reset_methods is not None else None,
            "power_state": self.power_state,
            "unknown": sorted(self.unknown) if self.unknown else [],
        }


@dataclass(slots=True)
class HostBridge:
    """A root bus (``pciDDDD:BB``): not a PCI function, the top of each tree."""

    id: str
    domain: int
    bus: int
    path: str
    #: the function a nested root bus lives in (VMD), else None
    parent: str | None = None
    numa_node: int | None = None
    kind: NodeKind = NodeKind.HOST_BRIDGE

    def to_dict(self) -> dict[str, Any]:
        # Same keys as a function so every node in the JSON has one shape.
        return {
            "id": self.id,
            "bdf": None,
            "parent": self.parent,
            "kind": self.kind.value,
            "vendor_id": None,
            "device_id": None,
            "subsystem_vendor_id": None,
            "subsystem_device_id": None,
            "class_code": None,
            "revision": None,
            "vendor_name": None,
            "device_name": None,
            "link": None,
            "numa_node": self.numa_node,
            "iommu_group": None,
            "driver": None,
            "serial": None,
            "card": None,
            "is_accelerator": False,
            "accelerator_rule": None,
            "slot": None,
            "bus_range": {"secondary": self.bus, "subordinate": None},
            "acs": None,
            "aer": None,
            "bars": [],
            "sriov": None,
            "physfn": None,
            "accessible": True,
            "config_bytes": None,
            "reset_methods": None,
            "power_state": None,
            "unknown": [],
        }


@dataclass(slots=True)
class Switch:
    """A PCIe switch: one upstream port and its downstream ports."""

    upstream: str
    downstream: list[str]
    on_card: bool
    card: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "downstream": list(self.downstream),
            "on_card": self.on_card,
            "card": self.card,
        }


class CardLayout(str, enum.Enum):
    SWITCH = "switch"  # an on-card switch with endpoints below it
    MULTIFUNCTION = "multifunction"  # functions of one multi-function device
    SINGLE = "single"  # one lone accelerator endpoint


@dataclass(slots=True)
class Card:
    """A physical accelerator card: its endpoints and the switch on it, if any."""

    index: int
    layout: CardLayout
    #: accelerator physical functions, in physical order
    endpoints: list[str]
    #: every function on the card (switch ports, endpoints, VFs, other functions), sorted by BDF
    functions: list[str]
    #: the topmost function of the card (the on-card switch's upstream port, or the first endpoint)
    top: str
    #: the port the card hangs below (root port or external switch downstream port)
    port: str | None
    switch: str | None
    slot: str | None
    serial: str | None
    vendor_id: int | None
    device_id: int | None
    model: str
    numa_node: int | None
    #: sort key: domain, then the device/function path from the root bus down
    position: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return card_name(self.index)

    def endpoint_names(self) -> list[str]:
        """``cardN.epM`` of its endpoints, in endpoint order."""
        return [endpoint_name(self.index, i) for i in range(len(self.endpoints))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "layout": self.layout.value,
            "endpoints": list(self.endpoints),
            "functions": list(self.functions),
            "top": self.top,
            "port": self.port,
            "switch": self.switch,
            "slot": self.slot,
            "serial": self.serial,
            "vendor_id": hex_id(self.vendor_id),
            "device_id": hex_id(self.device_id),
            "model": self.model,
            "numa_node": self.numa_node,
        }

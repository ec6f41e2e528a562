"""The PCI topology: nodes, parents, kinds, links, switches and cards of one snapshot."""

from accelctl.topology.accel import ACCEL_IDS_ENV, AcceleratorMatcher
from accelctl.topology.build import build_topology
from accelctl.topology.graph import Topology
from accelctl.topology.model import (
    Acs,
    Bar,
    Card,
    CardLayout,
    HostBridge,
    Link,
    NodeKind,
    PciFunction,
    Switch,
)

__all__ = [
    "ACCEL_IDS_ENV",
    "AcceleratorMatcher",
    "Acs",
    "Bar",
    "Card",
    "CardLayout",
    "HostBridge",
    "Link",
    "NodeKind",
    "PciFunction",
    "Switch",
    "Topology",
    "build_topology",
]

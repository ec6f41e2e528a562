"""build_topology: a scanned sysfs tree -> typed nodes, parents, kinds, links, cards.

Sources of truth, in order: the sysfs directory nesting for parents (cross-checked against bridge
bus ranges from config space, a disagreement is a warning), sysfs text attributes for cached ids
and live link state, and decoded config space for what only registers hold (port type, ACS, DSN,
slot). When config space is privilege-limited (64 bytes), kinds are inferred from the nesting and
class codes instead, and the facts that need capability registers stay unknown.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable

from accelctl.pci import regs
from accelctl.pci.bdf import Bdf, host_bridge_id
from accelctl.sysfs.config import ConfigSpace
from accelctl.sysfs.record import FunctionRecord
from accelctl.sysfs.root import SysfsRoot
from accelctl.sysfs.scan import RawTree, ScanWarning, scan_tree
from accelctl.topology.accel import ACCEL_IDS_ENV, AcceleratorMatcher
from accelctl.topology.model import Acs, HostBridge, Link, NodeKind, PciFunction

__all__ = ["ACCEL_IDS_ENV", "AcceleratorMatcher", "build_topology"]

_PORT_KINDS = {
    regs.PortType.ENDPOINT: NodeKind.ENDPOINT,
    regs.PortType.LEGACY_ENDPOINT: NodeKind.ENDPOINT,
    regs.PortType.ROOT_PORT: NodeKind.ROOT_PORT,
    regs.PortType.UPSTREAM: NodeKind.SWITCH_UPSTREAM,
    regs.PortType.DOWNSTREAM: NodeKind.SWITCH_DOWNSTREAM,
    regs.PortType.PCIE_TO_PCI_BRIDGE: NodeKind.PCI_BRIDGE,
    regs.PortType.PCI_TO_PCIE_BRIDGE: NodeKind.PCI_BRIDGE,
    regs.PortType.RC_ENDPOINT: NodeKind.RC_ENDPOINT,
    regs.PortType.RC_EVENT_COLLECTOR: NodeKind.RC_EVENT_COLLECTOR,
}


def build_topology(
    root: SysfsRoot | str | os.PathLike[str] | None = None,
    *,
    accel_ids: Iterable[str] = (),
    matcher: AcceleratorMatcher | None = None,
    names: bool = True,
    cross_check: bool = False,
):  # -> Topology (imported lazily below to keep module import order simple)
    """Scan a sysfs tree and build its topology.

    Args:
        root: a SysfsRoot, a path, or None for $ACCELCTL_SYSFS_ROOT or /sys.
        accel_ids: extra accelerator ids (``VVVV:DDDD``, ``VVVV:*``, ``class:0b40``; see
            accelctl.topology.accel), added to $ACCELCTL_ACCEL_IDS and the built-in rules.
        matcher: a ready AcceleratorMatcher (built once per command); when given, `accel_ids`
            and the environment are not consulted.
        names: look up vendor/device names in pci.ids when it is installed.
        cross_check: read sysfs attributes that restate config space too, and warn
            (ATTR_CONFIG_MISMATCH) where the two sources disagree. Slower; for audits and tests.

    Raises:
        SysfsRootError: the root is missing, not a directory, or has no PCI devices.
        SysfsPermissionError: the device list cannot be read.
        InvalidAcceleratorIdError: a malformed accelerator id.
    """
    from accelctl.topology.cards import group_cards
    from accelctl.topology.graph import Topology

    if not isinstance(root, SysfsRoot):
        root = SysfsRoot(root)
    if matcher is None:
        matcher = AcceleratorMatcher.from_env(accel_ids)
    # The build allocates a few objects per attribute (~100k on a 2,000-function machine), none
    # of them in reference cycles: the cyclic collector would walk them dozens of times for
    # nothing (10-15% of the build). Paused, and restored as it was, around the build only.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        raw = scan_tree(root, cross_check=cross_check)
        warnings = list(raw.warnings)
        nodes = _build_nodes(raw, warnings)
        rule_for = matcher.rule_for
        for fn in nodes.functions.values():
            fn.accelerator_rule = rule = rule_for(fn.vendor_id, fn.device_id, fn.class_code)
            fn.is_accelerator = rule is not None
        if names:
            _apply_names(nodes.functions.values(), live=root.is_live)
        switches, cards = group_cards(nodes.functions, nodes.children)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Topology(
        root=root,
        host_bridges=nodes.host_bridges,
        functions=nodes.functions,
        children=nodes.children,
        switches=switches,
        cards=cards,
        warnings=warnings,
    )


class _Nodes:
    __slots__ = ("functions", "host_bridges", "children")

    def __init__(self) -> None:
        self.functions: dict[str, PciFunction] = {}
        self.host_bridges: dict[str, HostBridge] = {}
        self.children: dict[str, list[str]] = {}


def _depth(raw: FunctionRecord) -> int:
    return raw.path.count(os.sep)


def _build_nodes(raw: RawTree, warnings: list[ScanWarning]) -> _Nodes:
    out = _Nodes()
    for hb in raw.host_bridges.values():
        out.host_bridges[hb.id] = HostBridge(hb.id, hb.domain, hb.bus, hb.path, hb.parent)
    shape = _Shape(raw)
    # Parents before children, so structural kind inference can look at the parent's kind.
    for r in sorted(raw.functions.values(), key=lambda r: (_depth(r), r.name)):
        fn = _make_function(r, raw, out, warnings, shape)
        out.functions[fn.id] = fn
    _link_flat_parents(out, warnings)
    _repair_parents(out, warnings)
    for fn in sorted(out.functions.values(), key=lambda f: f.bdf):
        if fn.parent is not None:
            out.children.setdefault(fn.parent, []).append(fn.id)
    for hb in out.host_bridges.values():
        if hb.parent is not None:
            out.children.setdefault(hb.parent, []).append(hb.id)
        kids = [out.functions[c] for c in out.children.get(hb.id, ()) if c in out.functions]
        numa = {k.numa_node for k in kids if k.numa_node is not None}
        hb.numa_node = numa.pop() if len(numa) == 1 else None
    _check_bus_ranges(out, warnings)
    _report_limited_config(raw.functions.values(), warnings)
    return out


class _Shape:
    """What kind inference needs to know about the tree around a function whose capabilities
    cannot be read: which directories hold bridges, and whether portdrv runs on this machine."""

    __slots__ = ("_raw", "_bridge_parents", "pcieport_runs")

    def __init__(self, raw: RawTree) -> None:
        self._raw = raw
        self._bridge_parents: set[str] | None = None
        #: pcieport binds every PCIe root port and switch port (drivers/pci/pcie/portdrv.c); when
        #: it is bound anywhere, a bridge it is not bound to is not one of those.
        self.pcieport_runs = any(r.driver == "pcieport" for r in raw.functions.values())

    def has_bridge_below(self, fn_id: str) -> bool:
        if self._bridge_parents is None:
            self._bridge_parents = {
                r.parent for r in self._raw.functions.values() if r.parent and r.is_bridge
            }
        return fn_id in self._bridge_parents


def _repair_parents(out: _Nodes, warnings: list[ScanWarning]) -> None:
    """No parent may name a node that is not in the output: a function whose parent directory
    could not be read hangs below the nearest ancestor that could (with a warning)."""
    for fn in out.functions.values():
        if fn.parent is None or fn.parent in out.functions or fn.parent in out.host_bridges:
            continue
        missing = fn.parent
        parent = None
        for part in reversed(fn.path.split(os.sep)[:-2]):
            if part in out.functions or part in out.host_bridges:
                parent = part
                break
        if parent is None:
            parent = host_bridge_id(fn.bdf.domain, fn.bdf.bus)
            if parent not in out.host_bridges:
                out.host_bridges[parent] = HostBridge(parent, fn.bdf.domain, fn.bdf.bus, "")
        fn.parent = parent
        warnings.append(ScanWarning(
            "PARENT_MISSING", fn.id,
            f"its parent {missing} could not be read; shown below {parent}",
        ))
    for hb in out.host_bridges.values():
        if hb.parent is not None and hb.parent not in out.functions:
            hb.parent = None


def _make_function(
    r: FunctionRecord,
    raw: RawTree,
    out: _Nodes,
    warnings: list[ScanWarning],
    shape: _Shape,
) -> PciFunction:
    cfg = r.config
    bdf = Bdf.from_sysfs_name(r.name)
    # The kernel's "%04x:%02x:%02x.%d" name is already the canonical id; a longer domain may
    # carry leading zeros in a hand-made tree.
    fn_id = r.name if len(r.name) == 12 else str(bdf)
    fn = PciFunction(id=fn_id, bdf=bdf, parent=r.parent, kind=NodeKind.ENDPOINT, path=r.path)
    # The attributes first (the kernel's cached view, right for a dead device too), else config.
    fn.vendor_id = _first(r.vendor_id, cfg.vendor_id if cfg else None)
    fn.device_id = _first(r.device_id, cfg.device_id if cfg else None)
    fn.subsystem_vendor_id = _first(r.subsystem_vendor_id, cfg.subsystem_vendor_id if cfg else None)
    fn.subsystem_device_id = _first(r.subsystem_device_id, cfg.subsystem_id if cfg else None)
    fn.class_code = _first(r.class_code, cfg.class_code if cfg else None)
    fn.revision = _first(r.revision, cfg.revision if cfg else None)
    fn.numa_node = r.numa_node
    fn.iommu_group = r.iommu_group
    fn.driver = r.driver
    fn.physfn = r.physfn
    if fn.physfn is not None and fn.vendor_id == 0xFFFF and r.vendor_id is None:
        _vf_ids_from_pf(fn, raw)
    fn.unknown.update(r.unreadable)
    if cfg is not None:
        fn.config_bytes = cfg.size
        fn.accessible = not cfg.all_ones
        fn.multifunction = cfg.multifunction
        for note in cfg.notes:
            if cfg.all_ones:
                warnings.append(ScanWarning("CONFIG_ALL_ONES", fn.id, note))
            elif cfg.size > regs.UNPRIVILEGED_CONFIG_BYTES:
                warnings.append(ScanWarning("CONFIG_DECODE", fn.id, note))
    elif "config" not in r.unreadable:
        fn.unknown["config"] = "no config file"
    pcie = cfg.pcie if cfg is not None else None
    fn.kind = _kind(fn, r, cfg, out, shape)
    fn.port_type = pcie.port_type if pcie else None
    fn.link = _link(fn, r, pcie, cfg is not None and cfg.caps_complete, warnings)
    _bridge_facts(fn, r, cfg)
    _capability_facts(fn, r, cfg)
    fn.bars = r.bars
    if r.windows:
        fn.windows = dict(r.windows)
    fn.aer = r.aer
    if r.sriov_attrs:
        fn.sriov_total_vfs, fn.sriov_num_vfs = r.sriov_total_vfs, r.sriov_num_vfs
    elif cfg is not None and cfg.sriov_total_vfs is not None:
        fn.sriov_total_vfs, fn.sriov_num_vfs = cfg.sriov_total_vfs, cfg.sriov_num_vfs
    fn.reset_methods = r.reset_methods
    fn.power_state = r.power_state
    fn.slot = raw.slots.get((bdf.domain, bdf.bus, bdf.device))
    return fn


def _vf_ids_from_pf(fn: PciFunction, raw: RawTree) -> None:
    """A VF's id registers read ffff: the kernel gives it the PF's vendor and the PF's SR-IOV
    VF Device ID, and so do we when the scan did not read its cached vendor/device files."""
    pf = raw.functions.get(fn.physfn or "")
    if pf is not None and pf.vf_ids is not None:
        fn.vendor_id, fn.device_id = pf.vf_ids


def _first(value: int | None, fallback: int | None) -> int | None:
    return fallback if value is None else value


def _kind(fn: PciFunction, r: FunctionRecord, cfg: ConfigSpace | None, out: _Nodes, shape: _Shape) -> NodeKind:
    """The node kind, from the best evidence there is (docs/topology-api.md, "Kinds"):

    1. a VF is a VF (its ``physfn`` link);
    2. the PCIe capability's port type, when config space is readable that far;
    3. the port type portdrv encodes in the port's service children (``<bdf>:pcieNNN``);
    4. otherwise, for a bridge: subtractive decode (class 060401) or a bridge pcieport does not
       drive (while it drives others) is a ``pci_bridge``; below a root bus it is a
       ``root_port``; below a root or downstream port it is a ``switch_upstream`` only if bridges
       (its downstream ports) sit below it; below an upstream port a ``switch_downstream``;
       anything else a ``pci_bridge``;
    5. for anything else, from the capability list and the parent, as lspci -t would draw it.
    """
    if fn.physfn is not None:
        return NodeKind.VIRTUAL_FUNCTION
    if cfg is not None and cfg.pcie is not None:
        # IntEnum keys hash like ints: an unknown port type (garbage config) just misses.
        kind = _PORT_KINDS.get(cfg.pcie.port_type)
        if kind is not None:
            return kind
    if r.service_port_type is not None:
        kind = _PORT_KINDS.get(r.service_port_type)
        if kind is not None:
            return kind
    is_bridge = (
        (fn.class_code is not None and fn.class_code >> 8 == regs.CLASS_BRIDGE_PCI)
        or (cfg is not None and cfg.header_type == regs.HEADER_BRIDGE)
        or r.bus_number_attrs
    )
    parent_kind = _parent_kind(fn.parent, out)
    known_not_pcie = cfg is not None and cfg.caps_complete and cfg.pcie is None
    if is_bridge:
        if known_not_pcie or fn.class_code == regs.CLASS_BRIDGE_SUBTRACTIVE:
            return NodeKind.PCI_BRIDGE
        if shape.pcieport_runs and fn.driver != "pcieport":
            return NodeKind.PCI_BRIDGE
        if parent_kind is NodeKind.HOST_BRIDGE:
            return NodeKind.ROOT_PORT
        if parent_kind in (NodeKind.ROOT_PORT, NodeKind.SWITCH_DOWNSTREAM):
            return NodeKind.SWITCH_UPSTREAM if shape.has_bridge_below(r.name) else NodeKind.PCI_BRIDGE
        if parent_kind is NodeKind.SWITCH_UPSTREAM:
            return NodeKind.SWITCH_DOWNSTREAM
        return NodeKind.PCI_BRIDGE
    if known_not_pcie or (parent_kind is NodeKind.PCI_BRIDGE):
        return NodeKind.PCI_ENDPOINT
    if parent_kind is NodeKind.HOST_BRIDGE:
        # On a root bus without a root port: an RCiEP if it is Express (modern kernels only
        # create link attributes for Express functions), a conventional function otherwise.
        if r.express_link_attrs:
            return NodeKind.RC_ENDPOINT
        return NodeKind.PCI_ENDPOINT if cfg is not None and cfg.caps_complete else NodeKind.RC_ENDPOINT
    return NodeKind.ENDPOINT


def _parent_kind(parent: str | None, out: _Nodes) -> NodeKind | None:
    if parent is None:
        return None
    if parent in out.host_bridges or parent.startswith("pci"):
        return NodeKind.HOST_BRIDGE
    p = out.functions.get(parent)
    return p.kind if p is not None else None


def _link(fn: PciFunction, r: FunctionRecord, pcie, caps_known: bool, warnings: list[ScanWarning]) -> Link | None:  # type: ignore[no-untyped-def]
    # A conventional PCI function has no link. Kernels before 4.19 still show it link files (reading
    # "Unknown speed" and width 0), so without a PCI Express capability they are ignored - but only
    # when the whole capability chain was read. With 64 bytes of config (non-root) the chain is
    # unknown, and since 4.19 only PCI Express functions have the files at all: a real link that
    # the files report (a PCIe-to-PCI bridge's upstream link) is kept; old kernels' placeholder
    # values parse to nothing below and give no link.
    if fn.kind in (NodeKind.PCI_ENDPOINT, NodeKind.PCI_BRIDGE) and pcie is None and caps_known:
        return None
    speed, width = r.link_speed_gts, r.link_width
    max_speed, max_width = r.max_link_speed_gts, r.max_link_width
    if pcie is not None and fn.accessible:
        _cross_check(fn, "current link speed", speed, pcie.speed_gts, warnings)
        _cross_check(fn, "current link width", width, pcie.width, warnings)
        _cross_check(fn, "max link width", max_width, pcie.max_width, warnings)
        speed = speed if speed is not None else pcie.speed_gts
        width = width if width is not None else pcie.width
        max_speed = max_speed if max_speed is not None else pcie.max_speed_gts
        max_width = max_width if max_width is not None else pcie.max_width
    if not fn.accessible:
        speed = width = None  # live reads of a dead device are garbage (Unknown / x63)
    if width == 0:
        speed = None  # no link trained: LNKSTA's speed field holds a meaningless reset value
    if max_width == 0:
        max_width = None
    if speed is None and width is None and max_speed is None and max_width is None:
        return None
    return Link(speed, width, max_speed, max_width)


def _cross_check(fn: PciFunction, what: str, attr, reg, warnings: list[ScanWarning]) -> None:  # type: ignore[no-untyped-def]
    if attr is not None and reg is not None and attr != reg:
        warnings.append(
            ScanWarning(
                "ATTR_CONFIG_MISMATCH",
                fn.id,
                f"{what}: sysfs attribute says {attr}, config space says {reg}",
            )
        )


def _bridge_facts(fn: PciFunction, r: FunctionRecord, cfg: ConfigSpace | None) -> None:
    if r.bus_number_attrs:
        fn.secondary_bus, fn.subordinate_bus = r.secondary_bus, r.subordinate_bus
    elif cfg is not None and cfg.secondary_bus is not None and fn.accessible:
        fn.secondary_bus, fn.subordinate_bus = cfg.secondary_bus, cfg.subordinate_bus


def _capability_facts(fn: PciFunction, r: FunctionRecord, cfg: ConfigSpace | None) -> None:
    serial = r.serial
    if serial is None and cfg is not None:
        serial = cfg.dsn
    fn.serial = serial
    if cfg is None or not fn.accessible:
        return
    if cfg.acs_cap is not None and cfg.acs_ctrl is not None:
        fn.acs = Acs(cfg.acs_cap, cfg.acs_ctrl)
    if cfg.dpc_status is not None:
        fn.dpc_triggered = bool(cfg.dpc_status & regs.DPC_STATUS_TRIGGER)
    if cfg.pcie is not None:
        fn.flr_capable = cfg.pcie.flr
        fn.slot_presence = cfg.pcie.presence_detect
        fn.hotplug_capable = cfg.pcie.hotplug_capable
    limited = not cfg.caps_complete or (fn.kind is not NodeKind.PCI_ENDPOINT and not cfg.ext_caps_complete)
    if limited and cfg.size <= regs.UNPRIVILEGED_CONFIG_BYTES:
        fn.unknown.setdefault(
            "capabilities", "config space readable only to 64 bytes: serial, ACS, AER registers unknown"
        )


def _link_flat_parents(out: _Nodes, warnings: list[ScanWarning]) -> None:
    """Functions found outside any nesting (flat copies): attach them by bus numbers, as lspci does."""
    orphans = [f for f in out.functions.values() if f.parent is None]
    if not orphans:
        return
    by_secondary = {
        (f.bdf.domain, f.secondary_bus): f.id
        for f in out.functions.values()
        if f.secondary_bus and f.accessible
    }
    for fn in orphans:
        parent = by_secondary.get((fn.bdf.domain, fn.bdf.bus))
        if parent is None:
            parent = host_bridge_id(fn.bdf.domain, fn.bdf.bus)
            if parent not in out.host_bridges:
                out.host_bridges[parent] = HostBridge(parent, fn.bdf.domain, fn.bdf.bus, "")
        fn.parent = parent
    warnings.append(
        ScanWarning(
            "FLAT_TREE",
            None,
            f"{len(orphans)} functions are not nested under a root bus directory; "
            "parents inferred from bridge bus numbers",
        )
    )


def _check_bus_ranges(out: _Nodes, warnings: list[ScanWarning]) -> None:
    """Every child of a bridge sits on its secondary bus; a disagreement is a warning."""
    for fn in out.functions.values():
        parent = out.functions.get(fn.parent or "")
        if parent is None:
            continue
        if not parent.accessible or parent.secondary_bus is None or fn.kind is NodeKind.VIRTUAL_FUNCTION:
            continue
        sec, sub = parent.secondary_bus, parent.subordinate_bus
        if sec == 0 and not sub:
            continue  # exhausted/unassigned bus numbers: a diagnostic, not a parse problem
        if not (sec <= fn.bdf.bus <= (sub if sub is not None else sec)):
            warnings.append(
                ScanWarning(
                    "BUS_RANGE_MISMATCH",
                    fn.id,
                    f"nested under {parent.id} whose buses are [{sec:02x}-{(sub or sec):02x}], "
                    f"but its bus is {fn.bdf.bus:02x}",
                )
            )


def _report_limited_config(records: Iterable[FunctionRecord], warnings: list[ScanWarning]) -> None:
    limited = [
        r.name for r in records if r.config is not None and 0 < r.config.size <= regs.UNPRIVILEGED_CONFIG_BYTES
    ]
    if limited:
        warnings.append(
            ScanWarning(
                "CONFIG_LIMITED",
                None,
                f"config space of {len(limited)} functions is readable only to 64 bytes (not root): "
                "serials, ACS, AER registers and port types from capabilities are unknown; "
                "kinds inferred from the tree",
            )
        )


def _apply_names(functions: Iterable[PciFunction], *, live: bool = False) -> None:
    """Names from pci.ids; on the live /sys, udev's hwdb names take precedence, as in lspci."""
    from accelctl.pci.names import PciIds

    by_id = {fn.id: fn for fn in functions}
    ids = PciIds.load()
    if ids is not None:
        for fn in by_id.values():
            if fn.vendor_id is not None:
                fn.vendor_name = ids.vendor(fn.vendor_id)
                if fn.device_id is not None:
                    fn.device_name = ids.device(fn.vendor_id, fn.device_id)
    if live:
        from accelctl.platform.udev import udev_names

        for fn_id, (vendor, model) in udev_names({i: fn.path for i, fn in by_id.items()}).items():
            fn = by_id[fn_id]
            fn.vendor_name = vendor or fn.vendor_name
            fn.device_name = model or fn.device_name

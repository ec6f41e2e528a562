"""One pass over a sysfs tree: every PCI function's attributes, links and config bytes.

The result is raw (text and bytes, as found); accelctl.topology.build interprets it. Enumeration
is tolerant: a broken entry becomes a warning and the scan goes on. A tree with no PCI devices at
all is an error, because nothing downstream can do anything useful with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from accelctl.errors import SysfsRootError
from accelctl.pci.bdf import HOST_BRIDGE_NAME, SYSFS_NAME
from accelctl.sysfs.attrs import parse_slot_address
from accelctl.sysfs.config import find_capability, find_ext_capability
from accelctl.sysfs.root import SysfsRoot, Unreadable, read_bytes

#: Attributes only sysfs has: read for every function (a missing file is simply absent).
SYSFS_ONLY_ATTRS = (
    "numa_node",
    "resource",
    "reset_method",
    "power_state",
)
#: AER statistics: the kernel creates them only for functions with the AER capability, so with
#: complete config space they are read only then (thousands of VFs have none).
AER_ATTRS = ("aer_dev_correctable", "aer_dev_nonfatal", "aer_dev_fatal")
#: Root-port AER totals: only root ports and event collectors have them.
ROOT_PORT_ATTRS = (
    "aer_rootport_total_err_cor",
    "aer_rootport_total_err_nonfatal",
    "aer_rootport_total_err_fatal",
)
#: Attributes whose facts full config space also holds (ids, live link state, bus numbers, DSN,
#: SR-IOV). They are read when config cannot stand in for them: privilege-limited (64 bytes),
#: all ones (a dead device, whose cached ids only sysfs still has), missing, or when the caller
#: asks for a cross-check of both sources.
CONFIG_BACKED_ATTRS = (
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "class",
    "revision",
    "current_link_speed",
    "current_link_width",
    "max_link_speed",
    "max_link_width",
    "secondary_bus_number",
    "subordinate_bus_number",
    "serial_number",
    "sriov_totalvfs",
    "sriov_numvfs",
)
#: Bridges keep their subsystem ids in an optional capability; sysfs has them either way.
BRIDGE_ATTRS = ("subsystem_vendor", "subsystem_device")
#: Links whose target's basename is the fact (driver name, group number, PF address).
LINK_ATTRS = ("driver", "iommu_group", "physfn")

_ROOT_PORT_TYPES = (0x4, 0xA)  # PCIe root port, RC event collector
_PCIE_CAP_ID = 0x10
_AER_EXT_CAP_ID = 0x0001


@dataclass(slots=True)
class ScanWarning:
    """Something the scan could not read or make sense of. `code` is stable UPPER_SNAKE."""

    code: str
    subject: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "subject": self.subject, "message": self.message}


@dataclass(slots=True)
class RawFunction:
    """A PCI function as found in sysfs."""

    name: str
    path: str
    #: Parent node id from the directory nesting: a BDF, a host bridge ``pciDDDD:BB``, or None
    #: when the tree is flat (then the parent is inferred from bus numbers).
    parent: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    config: bytes | None = None
    #: attribute -> why it could not be read
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RawHostBridge:
    id: str
    domain: int
    bus: int
    path: str
    #: The function a root bus is nested in (VMD), else None.
    parent: str | None


@dataclass(slots=True)
class RawTree:
    root: SysfsRoot
    functions: dict[str, RawFunction]
    host_bridges: dict[str, RawHostBridge]
    #: (domain, bus, device) -> physical slot name, from bus/pci/slots
    slots: dict[tuple[int, int, int], str]
    warnings: list[ScanWarning]


def scan_tree(root: SysfsRoot, *, cross_check: bool = False) -> RawTree:
    """Read every PCI function under `root`.

    Config space is read first; sysfs attributes that only restate it are skipped unless config
    is incomplete or `cross_check` asks for both (then the topology warns where they disagree).

    Raises:
        SysfsRootError: the tree has no PCI devices (not a sysfs tree, or an empty one).
        SysfsPermissionError: the device list itself cannot be read.
    """
    warnings: list[ScanWarning] = []
    dev_dirs = _find_device_dirs(root, warnings)
    if not dev_dirs:
        raise SysfsRootError(
            f"no PCI devices found under {root.path}",
            path=root.path,
            hint="expected bus/pci/devices/<BDF> (like /sys); build a fixture with 'accelctl fixture build'",
        )
    functions: dict[str, RawFunction] = {}
    host_bridges: dict[str, RawHostBridge] = {}
    seen_parents: set[str] = set()
    for name, path in dev_dirs:
        fn = _read_function(root, name, path, warnings, cross_check)
        if fn is None:
            continue
        functions[name] = fn
        parent_dir = os.path.dirname(path)
        if parent_dir not in seen_parents:
            seen_parents.add(parent_dir)
            _note_host_bridge(path, host_bridges)
    return RawTree(root, functions, host_bridges, _read_slots(root, warnings), warnings)


def _find_device_dirs(root: SysfsRoot, warnings: list[ScanWarning]) -> list[tuple[str, str]]:
    """(BDF, real directory) for every PCI function, sorted by name for determinism."""
    devices = root.join("bus", "pci", "devices")
    out: list[tuple[str, str]] = []
    names = root.listdir(devices)
    if not names:
        return _walk_devices(root)
    for name in sorted(names):
        entry = os.path.join(devices, name)
        if not SYSFS_NAME.match(name):
            warnings.append(
                ScanWarning("STRAY_ENTRY", None, f"{entry} is not a PCI address; ignored")
            )
            continue
        # readlink first: one syscall for the common case, no per-component realpath walk.
        # Whether the target exists is learnt when its files are read (a broken link then
        # becomes a warning there), not with an extra stat per device here.
        target = root.link_target(entry)
        if target is None:
            if os.path.isdir(entry):
                target = entry  # a flattened copy: no nesting, parents come from bus numbers
            elif os.path.islink(entry):
                warnings.append(ScanWarning("BROKEN_LINK", name, f"{entry} points outside the tree; skipped"))
                continue
            else:
                warnings.append(ScanWarning("STRAY_ENTRY", name, f"{entry} is not a directory"))
                continue
        out.append((name, target))
    return out


def _walk_devices(root: SysfsRoot) -> list[tuple[str, str]]:
    """Trees without bus/pci (a partial copy): find functions by walking devices/pci*."""
    out: list[tuple[str, str]] = []
    top = root.join("devices")
    for name in sorted(root.listdir(top)):
        if HOST_BRIDGE_NAME.match(name):
            for dirpath, dirnames, _ in os.walk(os.path.join(top, name)):
                # Only descend into PCI functions and nested root buses (VMD), never into
                # driver children (net/, nvme/, power/ ...): bounded and fast.
                dirnames[:] = sorted(
                    d for d in dirnames if SYSFS_NAME.match(d) or HOST_BRIDGE_NAME.match(d)
                )
                for d in dirnames:
                    if SYSFS_NAME.match(d):
                        out.append((d, os.path.join(dirpath, d)))
    return sorted(out)


def _parent_id(path: str) -> str | None:
    parent = os.path.basename(os.path.dirname(path))
    if SYSFS_NAME.match(parent) or HOST_BRIDGE_NAME.match(parent):
        return parent
    return None


def _note_host_bridge(path: str, host_bridges: dict[str, RawHostBridge]) -> None:
    """Record the root bus directories above a function (several levels when nested in VMD)."""
    d = os.path.dirname(path)
    while True:
        base = os.path.basename(d)
        m = HOST_BRIDGE_NAME.match(base)
        if m:
            if base not in host_bridges:
                host_bridges[base] = RawHostBridge(
                    base, int(m.group(1), 16), int(m.group(2), 16), d, _parent_id(d)
                )
            return
        if not SYSFS_NAME.match(base):
            return
        d = os.path.dirname(d)


def _read_function(
    root: SysfsRoot, name: str, path: str, warnings: list[ScanWarning], cross_check: bool
) -> RawFunction | None:
    fn = RawFunction(name=name, path=path, parent=_parent_id(path))
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        warnings.append(
            ScanWarning("BROKEN_LINK", name, f"{path} does not exist (device removed while reading?); skipped")
        )
        return None
    except OSError as err:
        warnings.append(ScanWarning("DEVICE_VANISHED", name, f"{path}: {err.strerror}; skipped"))
        return None
    try:
        _read_function_at(dfd, fn, cross_check)
    finally:
        os.close(dfd)
    return fn


def _read_function_at(dfd: int, fn: RawFunction, cross_check: bool) -> None:
    try:
        fn.config = read_bytes("config", dir_fd=dfd)
    except Unreadable as err:
        fn.unreadable["config"] = str(err)
    cfg = fn.config
    # Config can stand in for the attributes only when it is complete and its ids are real: a
    # dead device reads all ones, and an SR-IOV VF reads ffff ids (only sysfs knows them).
    full = cfg is not None and len(cfg) >= 256 and cfg[:2] != b"\xff\xff"
    wanted: tuple[str, ...] = SYSFS_ONLY_ATTRS
    if cross_check or not full:
        wanted += CONFIG_BACKED_ATTRS + AER_ATTRS
    elif find_ext_capability(cfg, _AER_EXT_CAP_ID) is not None:
        wanted += AER_ATTRS
    elif cfg is not None and cfg[0x0E] & 0x7F == 1:
        wanted += BRIDGE_ATTRS
    if not full or _pcie_port_type(cfg) in _ROOT_PORT_TYPES:
        wanted += ROOT_PORT_ATTRS
    attrs, unreadable = fn.attrs, fn.unreadable
    for attr in wanted:
        try:
            data = read_bytes(attr, dir_fd=dfd)
        except Unreadable as err:
            unreadable[attr] = "permission denied" if err.permission else str(err)
            continue
        if data is not None:
            attrs[attr] = data.decode("utf-8", "replace").strip()
    for link in LINK_ATTRS:
        target = SysfsRoot.link_name(link, dir_fd=dfd)
        if target is not None:
            fn.links[link] = target


def _pcie_port_type(cfg: bytes | None) -> int | None:
    """The PCIe port type, from the Express capability's flags (None when not readable)."""
    if cfg is None:
        return None
    ptr = find_capability(cfg, _PCIE_CAP_ID)
    if ptr is None or ptr + 3 > len(cfg):
        return None
    return (cfg[ptr + 2] >> 4) & 0xF


def _read_slots(root: SysfsRoot, warnings: list[ScanWarning]) -> dict[tuple[int, int, int], str]:
    slots_dir = root.join("bus", "pci", "slots")
    out: dict[tuple[int, int, int], str] = {}
    for name in sorted(root.listdir(slots_dir)):
        try:
            data = read_bytes(os.path.join(slots_dir, name, "address"))
        except Unreadable:
            continue
        if data is None:
            continue
        addr = parse_slot_address(data.decode("ascii", "replace"))
        if addr is None:
            warnings.append(
                ScanWarning("BAD_SLOT_ADDRESS", None, f"slot {name}: address {data!r} not understood")
            )
            continue
        dom, bus, dev = addr
        if dev is not None:
            out[(dom, bus, dev)] = name
    return out

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
from accelctl.sysfs.root import SysfsRoot, Unreadable, read_bytes

#: Text attributes a scan reads when present. Writable-only files (reset, remove, rescan) and
#: binary BAR files are never opened.
TEXT_ATTRS = (
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "class",
    "revision",
    "numa_node",
    "current_link_speed",
    "current_link_width",
    "max_link_speed",
    "max_link_width",
    "secondary_bus_number",
    "subordinate_bus_number",
    "serial_number",
    "resource",
    "aer_dev_correctable",
    "aer_dev_nonfatal",
    "aer_dev_fatal",
    "aer_rootport_total_err_cor",
    "aer_rootport_total_err_nonfatal",
    "aer_rootport_total_err_fatal",
    "sriov_totalvfs",
    "sriov_numvfs",
    "reset_method",
    "power_state",
    "label",
)
_TEXT_ATTR_SET = frozenset(TEXT_ATTRS)
#: Links whose target's basename is the fact (driver name, group number, PF address).
LINK_ATTRS = ("driver", "iommu_group", "physfn")


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
    virtfns: int = 0


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


def scan_tree(root: SysfsRoot) -> RawTree:
    """Read every PCI function under `root`.

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
    for name, path in dev_dirs:
        fn = _read_function(root, name, path, warnings)
        if fn is None:
            continue
        functions[name] = fn
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
        if os.path.islink(entry):
            target = root.resolve_link(entry)
            if target is None:
                warnings.append(
                    ScanWarning(
                        "BROKEN_LINK",
                        name,
                        f"{entry} points nowhere (device removed while reading?); skipped",
                    )
                )
                continue
        elif os.path.isdir(entry):
            target = entry  # a flattened copy: no nesting, parents come from bus numbers
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
    root: SysfsRoot, name: str, path: str, warnings: list[ScanWarning]
) -> RawFunction | None:
    try:
        entries = os.listdir(path)
    except OSError as err:
        warnings.append(
            ScanWarning("DEVICE_VANISHED", name, f"{path} could not be listed ({err.strerror}); skipped")
        )
        return None
    fn = RawFunction(name=name, path=path, parent=_parent_id(path))
    for entry in entries:
        if entry in _TEXT_ATTR_SET:
            _read_attr(fn, entry, os.path.join(path, entry))
        elif entry in LINK_ATTRS:
            target = root.link_name(os.path.join(path, entry))
            if target is not None:
                fn.links[entry] = target
        elif entry.startswith("virtfn"):
            fn.virtfns += 1
    if "config" in entries:
        try:
            fn.config = read_bytes(os.path.join(path, "config"))
        except Unreadable as err:
            fn.unreadable["config"] = str(err)
    if "vendor" not in fn.attrs and "vendor" not in fn.unreadable and not os.path.isdir(path):
        warnings.append(ScanWarning("DEVICE_VANISHED", name, f"{path} vanished while reading; skipped"))
        return None
    return fn


def _read_attr(fn: RawFunction, attr: str, path: str) -> None:
    try:
        data = read_bytes(path)
    except Unreadable as err:
        fn.unreadable[attr] = "permission denied" if err.permission else str(err)
        return
    if data is not None:
        fn.attrs[attr] = data.decode("utf-8", "replace").strip()


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

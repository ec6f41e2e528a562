"""One pass over a sysfs tree: every PCI function's attributes, links and config space.

The result is one typed record per function (accelctl.sysfs.record.FunctionRecord): attributes
parsed and config space decoded, each once, here; accelctl.topology.build interprets the records
without knowing attribute names or formats. Enumeration is tolerant: a broken entry becomes a
warning and the scan goes on. A tree with no PCI devices at all is an error, because nothing
downstream can do anything useful with it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from accelctl.errors import AccelError, SysfsRootError
from accelctl.pci import regs
from accelctl.pci.bdf import HOST_BRIDGE_NAME, SYSFS_NAME
from accelctl.sysfs.attrs import parse_slot_address
from accelctl.sysfs.config import ConfigSpace, decode_config, find_ext_capability, vf_ids
from accelctl.sysfs.record import FunctionRecord, apply_attributes
from accelctl.sysfs.root import ATTR_OPEN_FLAGS, MAX_ATTR_BYTES, NOT_REGULAR, SysfsRoot, Unreadable, read_bytes

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
#: What a VF's config cannot tell (its id registers read ffff): only sysfs has the real ids.
VF_ID_ATTRS = ("vendor", "device")
#: Everything, for functions whose config is missing, limited or dead, and for cross-checks.
_ALL_ATTRS = SYSFS_ONLY_ATTRS + CONFIG_BACKED_ATTRS + AER_ATTRS + ROOT_PORT_ATTRS
#: Links whose target's basename is the fact (driver name, group number, PF address).
LINK_ATTRS = ("driver", "iommu_group", "physfn")
_LINKS_NOT_VF = ("driver", "iommu_group")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = ATTR_OPEN_FLAGS
_ROOT_PORT_TYPES = (0x4, 0xA)  # PCIe root port, RC event collector
_STANDARD_CONFIG_BYTES = 256
_ALL_ONES_U32 = b"\xff\xff\xff\xff"


@dataclass(slots=True)
class ScanWarning:
    """Something the scan could not read or make sense of. `code` is stable UPPER_SNAKE."""

    code: str
    subject: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "subject": self.subject, "message": self.message}


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
    """What one scan found: typed records, not yet a topology."""

    root: SysfsRoot
    functions: dict[str, FunctionRecord]
    host_bridges: dict[str, RawHostBridge]
    #: (domain, bus, device) -> physical slot name, from bus/pci/slots
    slots: dict[tuple[int, int, int], str]
    warnings: list[ScanWarning]


def _root_hint(path: str) -> str:
    # A copied or unpacked /sys often sits one or two levels below the directory given
    # (host/sys, or archive/host/sys): name it rather than leave the user to search.
    base = Path(path)
    for pattern in ("sys", "*/sys"):
        for candidate in sorted(base.glob(pattern))[:1]:
            if (candidate / "bus" / "pci" / "devices").is_dir():
                return f"a sysfs tree is at {candidate}: pass --sysfs-root {candidate}"
    return "expected bus/pci/devices/<BDF> (like /sys); build a fixture with 'accelctl fixture build'"


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
            hint=_root_hint(root.path),
        )
    functions: dict[str, FunctionRecord] = {}
    host_bridges: dict[str, RawHostBridge] = {}
    #: parent directory -> its node id (many functions share one: VFs, functions of a device)
    parent_ids: dict[str, str | None] = {}
    walked: set[str] = set()
    for name, path in dev_dirs:
        parent_dir = path[: path.rfind("/")]
        if parent_dir in parent_ids:
            parent = parent_ids[parent_dir]
        else:
            parent = parent_ids[parent_dir] = _parent_id(path)
            _note_host_bridge(path, host_bridges, walked)
        fn = _read_function(name, path, parent, warnings, cross_check, functions)
        if fn is not None:
            functions[name] = fn
    _read_unlisted(root, functions, host_bridges, warnings, cross_check)
    return RawTree(root, functions, host_bridges, _read_slots(root, warnings), warnings)


def _read_unlisted(
    root: SysfsRoot,
    functions: dict[str, FunctionRecord],
    host_bridges: dict[str, RawHostBridge],
    warnings: list[ScanWarning],
    cross_check: bool,
) -> None:
    """Read the functions under devices/pci* that bus/pci/devices does not list.

    Real kernels leave such trees (a device being removed, partial captures, odd kernels): a
    switch port missing from the list would otherwise orphan its whole subtree. Every directory
    that can hold functions is listed once: the root buses (and devices/ for root buses with no
    listed function at all) and the functions that can hold a bus (read with their listing).
    """
    found: list[tuple[str, str, str]] = []  # (name, path, parent id)
    listed: set[str] = set()  # directories already looked into

    def look_in(dir_path: str, parent_id: str, names: list[str] | tuple[str, ...]) -> None:
        listed.add(dir_path)
        for name in sorted(names):
            if SYSFS_NAME.match(name) and name not in functions:
                found.append((name, f"{dir_path}/{name}", parent_id))
            elif HOST_BRIDGE_NAME.match(name):
                _note_host_bridge(f"{dir_path}/{name}/-", host_bridges)  # a root bus nested in VMD

    def names_in(path: str) -> list[str]:
        try:
            return root.listdir(path)
        except AccelError as err:  # unreadable or vanished: what was listed is all there is
            warnings.append(ScanWarning("UNREADABLE_DIRECTORY", None, str(err)))
            return []

    # Root buses none of whose functions is listed are only seen here.
    devices = root.join("devices")
    for top in sorted(names_in(devices)):
        if HOST_BRIDGE_NAME.match(top) and top not in host_bridges:
            if any(SYSFS_NAME.match(n) for n in names_in(f"{devices}/{top}")):
                _note_host_bridge(f"{devices}/{top}/-", host_bridges)
    while True:
        for hb in list(host_bridges.values()):
            if hb.path not in listed:
                look_in(hb.path, hb.id, names_in(hb.path))
        for fn in list(functions.values()):
            if fn.child_names and fn.path not in listed:
                look_in(fn.path, fn.name, fn.child_names)
        if not found:
            return
        batch, found[:] = list(found), []
        for name, path, parent in batch:
            if name in functions:
                continue
            fn = _read_function(name, path, parent, warnings, cross_check, functions)
            if fn is not None:
                functions[name] = fn
                warnings.append(ScanWarning(
                    "UNLISTED_FUNCTION", name,
                    f"{path} is not listed in bus/pci/devices (a partial copy, or a device being "
                    "removed); read from the devices/ hierarchy",
                ))


def _find_device_dirs(root: SysfsRoot, warnings: list[ScanWarning]) -> list[tuple[str, str]]:
    """(BDF, real directory) for every PCI function, sorted by name for determinism."""
    devices = root.join("bus", "pci", "devices")
    out: list[tuple[str, str]] = []
    names = root.listdir(devices)
    if not names:
        return _walk_devices(root)
    # readlink relative to the open directory: the kernel walks the (long) root path once, not
    # once per device. Whether a target exists is learnt when its files are read (a broken link
    # then becomes a warning there), not with an extra stat per device here.
    try:
        dfd = os.open(devices, _DIR_FLAGS)
    except OSError:
        dfd = None  # vanished or unreadable since the listing: plain paths still work or warn
    try:
        for name in sorted(names):
            if not SYSFS_NAME.match(name):
                warnings.append(
                    ScanWarning("STRAY_ENTRY", None, f"{os.path.join(devices, name)} is not a PCI address; ignored")
                )
                continue
            target = root.link_target(os.path.join(devices, name), dir_fd=dfd)
            if target is None:
                entry = os.path.join(devices, name)
                if os.path.isdir(entry):
                    target = entry  # a flattened copy: no nesting, parents come from bus numbers
                elif os.path.islink(entry):
                    warnings.append(ScanWarning("BROKEN_LINK", name, f"{entry} points outside the tree; skipped"))
                    continue
                else:
                    warnings.append(ScanWarning("STRAY_ENTRY", name, f"{entry} is not a directory"))
                    continue
            out.append((name, target))
    finally:
        if dfd is not None:
            os.close(dfd)
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


def _note_host_bridge(path: str, host_bridges: dict[str, RawHostBridge],
                      walked: set[str] | None = None) -> None:
    """Record the root bus directory above a function. `walked`: directories whose way up was
    walked already (the walk stops there: siblings and cousins share their ancestors)."""
    d = path[: path.rfind("/")]
    passed = []
    while walked is None or d not in walked:
        base = d[d.rfind("/") + 1:]
        m = HOST_BRIDGE_NAME.match(base)
        if m:
            if base not in host_bridges:
                host_bridges[base] = RawHostBridge(
                    base, int(m.group(1), 16), int(m.group(2), 16), d, _parent_id(d)
                )
            break
        if not SYSFS_NAME.match(base):
            break
        passed.append(d)
        d = d[: d.rfind("/")]
    if walked is not None:
        walked.update(passed)


def _read_function(
    name: str,
    path: str,
    parent: str | None,
    warnings: list[ScanWarning],
    cross_check: bool,
    scanned: dict[str, FunctionRecord],
) -> FunctionRecord | None:
    fn = FunctionRecord(name, path, parent)
    try:
        dfd = os.open(path, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        warnings.append(
            ScanWarning("BROKEN_LINK", name, f"{path} does not exist (device removed while reading?); skipped")
        )
        return None
    except PermissionError:
        warnings.append(ScanWarning("DEVICE_UNREADABLE", name, f"{path}: permission denied; skipped"))
        return None
    except OSError as err:
        warnings.append(ScanWarning("DEVICE_VANISHED", name, f"{path}: {err.strerror}; skipped"))
        return None
    try:
        _read_function_at(dfd, fn, cross_check, scanned)
    finally:
        os.close(dfd)
    return fn


def _wanted_attrs(data: bytes | None, cfg: ConfigSpace | None, cross_check: bool,
                  pf: FunctionRecord | None) -> tuple[str, ...]:
    """The attribute files worth opening for a function, given its config (raw and decoded)
    and, for an SR-IOV VF, its PF's record."""
    if cross_check or data is None or cfg is None or len(data) < _STANDARD_CONFIG_BYTES \
            or data[8:12] == _ALL_ONES_U32:
        # Config cannot stand in for the attributes: privilege-limited (64 bytes), missing, or
        # a dead device reading all ones (whose cached ids and link state only sysfs still has;
        # class ffffff is never valid, so it tells a dead function from a VF).
        return _ALL_ATTRS
    wanted = SYSFS_ONLY_ATTRS
    is_vf = data[:2] == b"\xff\xff"
    if is_vf and (pf is None or pf.vf_ids is None):
        # An SR-IOV VF: its Vendor and Device ID registers read ffff by specification; every
        # other register (class, capabilities, link) is its own and real. The kernel gives it
        # the PF's vendor and the PF's SR-IOV "VF Device ID"; read what it cached only when the
        # PF's config cannot say (accelctl.topology.build fills the ids from the PF otherwise).
        wanted += VF_ID_ATTRS
    # A VF's config is decoded to its header only (its link, serial and ACS are its PF's): one
    # bounded look for the AER capability it may have of its own.
    has_aer = (find_ext_capability(data, regs.EXT_CAP_ID_ERR) is not None if cfg.header_only
               else regs.EXT_CAP_ID_ERR in cfg.ext_cap_ids)
    if has_aer:
        wanted += AER_ATTRS
    bridge = cfg.header_type == regs.HEADER_BRIDGE
    if bridge:
        wanted += BRIDGE_ATTRS
    # Root ports (bridges) and RC event collectors (base class 08) may have root AER totals.
    if (bridge or data[0x0B] == 0x08) and cfg.pcie is not None and cfg.pcie.port_type in _ROOT_PORT_TYPES:
        wanted += ROOT_PORT_ATTRS
    return wanted


def _read_function_at(
    dfd: int, fn: FunctionRecord, cross_check: bool, scanned: dict[str, FunctionRecord]
) -> None:
    unreadable = fn.unreadable
    try:
        data = read_bytes("config", dir_fd=dfd)
    except Unreadable as err:
        unreadable["config"] = err.reason
        data = None
    readlink = os.readlink
    # Only an SR-IOV VF has a physfn link, and a VF's vendor id register reads ffff by
    # specification: a function whose config says otherwise is not one (a readlink saved on
    # every PF, bridge and host function).
    maybe_vf = data is None or data[:2] in (b"\xff\xff", b"\xff", b"")
    for link in LINK_ATTRS if maybe_vf else _LINKS_NOT_VF:
        try:
            target = readlink(link, dir_fd=dfd)
        except OSError:
            continue
        base = target.rstrip("/").rpartition("/")[2]
        if not base:
            continue
        if link == "driver":
            fn.driver = base
        elif link == "physfn":
            fn.physfn = base
        elif base.isdigit():
            fn.iommu_group = int(base)
    # Decoded once, here: an SR-IOV VF's header only (its link, serial, ACS and AER are its
    # PF's; thousands of them on a large machine).
    cfg = fn.config = decode_config(data, header_only=fn.physfn is not None) if data is not None else None
    if fn.physfn is not None:
        # A PF sorts before its VFs (higher routing ids on the same or a later bus), so it is
        # in `scanned` by the time its VFs are read.
        pf = scanned.get(fn.physfn)
    else:
        pf = None
        if cfg is not None:
            fn.vf_ids = vf_ids(cfg)
    # os.open/os.read bound to locals and inlined: this loop runs ~6 times per function, tens
    # of thousands of times on a large machine (see read_bytes for why one read() suffices).
    open_, read, close, fstat, is_reg = os.open, os.read, os.close, os.fstat, stat.S_ISREG
    flags = _FILE_FLAGS
    attrs: dict[str, str] = {}
    for attr in _wanted_attrs(data, cfg, cross_check, pf):
        try:
            fd = open_(attr, flags, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            unreadable[attr] = Unreadable(err).reason
            continue
        try:
            if not is_reg(fstat(fd).st_mode):
                unreadable[attr] = NOT_REGULAR
                continue
            text = read(fd, MAX_ATTR_BYTES)
        except OSError as err:
            unreadable[attr] = Unreadable(err).reason
            continue
        finally:
            close(fd)
        attrs[attr] = text.decode("utf-8", "replace").strip()
    apply_attributes(fn, attrs)
    if data is not None and len(data) > 0x0E and data[8:12] != _ALL_ONES_U32:
        header_type = data[regs.HEADER_TYPE] & regs.HEADER_TYPE_MASK
        fn.is_bridge = header_type == regs.HEADER_BRIDGE
        holds_a_bus = header_type in (regs.HEADER_BRIDGE, regs.HEADER_CARDBUS) or (data[0x0B], data[0x0A]) == (0x01, 0x04)
    else:
        cls = attrs.get("class", "")[:6]
        fn.is_bridge = cls == "0x0604"
        holds_a_bus = cls in _BUS_HOLDER_CLASSES
    if holds_a_bus:
        _list_children(dfd, fn)


#: Classes whose functions can hold a bus: PCI-to-PCI and CardBus bridges (0604, 0607), and
#: RAID controllers (0104), of which Intel VMD nests a whole root bus inside its directory.
_BUS_HOLDER_CLASSES = ("0x0604", "0x0607", "0x0104")


def _list_children(dfd: int, fn: FunctionRecord) -> None:
    """The PCI functions nested in `fn`'s directory, and the port type its portdrv service
    children encode: ``<bdf>:pcieNN`` (older kernels: (type - 4) << 4 | service) or
    ``<bdf>:pcieNNN`` ((type - 4) << 8 | service)."""
    try:
        names = os.listdir(dfd)
    except OSError:
        return
    children = []
    prefix = fn.name + ":pcie"
    for name in names:
        if ":" not in name:
            continue  # an attribute file or a driver's folder (most of the listing)
        if name.startswith(prefix):
            code = name[len(prefix):]
            try:
                value = int(code, 16)
            except ValueError:
                continue
            if len(code) == 2:
                fn.service_port_type = (value >> 4) + 4
            elif len(code) == 3:
                fn.service_port_type = (value >> 8) + 4
        elif SYSFS_NAME.match(name) or HOST_BRIDGE_NAME.match(name):
            children.append(name)
    fn.child_names = tuple(sorted(children))


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

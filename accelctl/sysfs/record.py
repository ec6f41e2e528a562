"""What the scan knows about one PCI function, typed: the sysfs attributes parsed and config
space decoded, each once. Kernel attribute names and their text formats stay in accelctl.sysfs;
accelctl.topology builds on these records without knowing either.

Attribute facts are None when the file is absent or says "unknown"; `config` is None when there is
no config file (or it could not be read: `unreadable` says why). Where both an attribute and
config space can say a thing, the record keeps both and the topology decides (attributes first:
they are the kernel's cached view, correct for a dead device too).
"""

from __future__ import annotations

from accelctl.sysfs import attrs as A
from accelctl.sysfs.config import ConfigSpace

#: Names of the bridge windows, by line of the 17-line `resource` table (13, 14, 15).
BRIDGE_WINDOW_NAMES = ("io_window", "mem_window", "pref_window")
#: the id attributes (hex text) and the record field each fills
_HEX_ID_ATTRS = (("vendor", "vendor_id"), ("device", "device_id"), ("subsystem_vendor", "subsystem_vendor_id"),
                 ("subsystem_device", "subsystem_device_id"), ("class", "class_code"), ("revision", "revision"))
_AER_FILES = (("correctable", "aer_dev_correctable"), ("nonfatal", "aer_dev_nonfatal"),
              ("fatal", "aer_dev_fatal"))
_AER_ROOT_FILES = (("correctable", "aer_rootport_total_err_cor"),
                   ("nonfatal", "aer_rootport_total_err_nonfatal"),
                   ("fatal", "aer_rootport_total_err_fatal"))
_AER_ATTR_NAMES = frozenset(name for _, name in (*_AER_FILES, *_AER_ROOT_FILES))


class FunctionRecord:
    """One PCI function as the scan found it (a plain slotted class: thousands per scan)."""

    __slots__ = (
        "name", "path", "parent", "config", "unreadable", "driver", "iommu_group", "physfn",
        "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id", "class_code",
        "revision", "numa_node", "link_speed_gts", "link_width", "max_link_speed_gts",
        "max_link_width", "express_link_attrs", "bus_number_attrs", "secondary_bus",
        "subordinate_bus", "serial", "sriov_attrs", "sriov_total_vfs", "sriov_num_vfs",
        "reset_methods", "power_state", "bars", "windows", "aer", "vf_ids", "is_bridge",
        "child_names", "service_port_type",
    )

    def __init__(self, name: str, path: str, parent: str | None) -> None:
        self.name = name
        self.path = path
        #: Parent node id from the directory nesting: a BDF, a host bridge ``pciDDDD:BB``, or
        #: None when the tree is flat (then the parent is inferred from bus numbers).
        self.parent = parent
        #: config space, decoded once (the common header only for an SR-IOV VF, whose link,
        #: serial, ACS and AER are its PF's)
        self.config: ConfigSpace | None = None
        #: fact (attribute or "config") -> why it could not be read
        self.unreadable: dict[str, str] = {}
        #: the targets of the driver / iommu_group / physfn links
        self.driver: str | None = None
        self.iommu_group: int | None = None
        self.physfn: str | None = None
        # -- attributes (None: absent or unknown) --
        self.vendor_id: int | None = None
        self.device_id: int | None = None
        self.subsystem_vendor_id: int | None = None
        self.subsystem_device_id: int | None = None
        self.class_code: int | None = None
        self.revision: int | None = None
        #: None when absent or when the kernel says "no node" (-1)
        self.numa_node: int | None = None
        self.link_speed_gts: float | None = None
        #: lanes, 0 = link down
        self.link_width: int | None = None
        self.max_link_speed_gts: float | None = None
        self.max_link_width: int | None = None
        #: the kernel wrote a max link width it only has for a PCIe function (not legacy's 255)
        self.express_link_attrs = False
        #: secondary/subordinate_bus_number exist (only bridges have them)
        self.bus_number_attrs = False
        self.secondary_bus: int | None = None
        self.subordinate_bus: int | None = None
        self.serial: str | None = None
        #: sriov_totalvfs exists (an SR-IOV PF)
        self.sriov_attrs = False
        self.sriov_total_vfs: int | None = None
        self.sriov_num_vfs: int | None = None
        self.reset_methods: tuple[str, ...] | None = None
        self.power_state: str | None = None
        #: BAR0-5 from the `resource` table; bridge windows: name -> (start, size)
        self.bars: tuple[A.Resource, ...] = ()
        self.windows: dict[str, tuple[int, int]] = {}
        #: {"correctable": {name: count}, "nonfatal": ..., "fatal": ..., "rootport_totals": ...}
        self.aer: dict[str, dict[str, int]] | None = None
        # -- from config space and the directory --
        #: for an SR-IOV PF: the (vendor, device) the kernel gives its VFs (a VF's own id
        #: registers read ffff), None when not a PF or config cannot say
        self.vf_ids: tuple[int, int] | None = None
        #: a bridge by its header type (by its class when config cannot say)
        self.is_bridge = False
        #: names of the PCI function directories nested in this one (listed for functions that
        #: can hold a bus, so functions bus/pci/devices does not list are found)
        self.child_names: tuple[str, ...] = ()
        #: the PCIe port type its portdrv service children (``<bdf>:pcieNNN``) encode, or None
        self.service_port_type: int | None = None

    def __repr__(self) -> str:
        return f"FunctionRecord({self.name!r}, {self.path!r}, parent={self.parent!r})"


def apply_attributes(rec: FunctionRecord, attrs: dict[str, str]) -> None:
    """Parse the attribute texts the scan read (name -> stripped text) into `rec`."""
    get = attrs.get
    for attr, field in _HEX_ID_ATTRS:
        if attr in attrs:
            setattr(rec, field, A.parse_hex(attrs[attr]))
    if "numa_node" in attrs:
        numa = A.parse_int(attrs["numa_node"])
        rec.numa_node = numa if numa is not None and numa >= 0 else None
    if "current_link_speed" in attrs:
        rec.link_speed_gts = A.parse_link_speed(attrs["current_link_speed"])
    if "current_link_width" in attrs:
        rec.link_width = A.parse_link_width(attrs["current_link_width"])
    if "max_link_speed" in attrs:
        rec.max_link_speed_gts = A.parse_link_speed(attrs["max_link_speed"])
    if "max_link_width" in attrs:
        text = attrs["max_link_width"]
        rec.max_link_width = A.parse_link_width(text)
        rec.express_link_attrs = A.parse_int(text) not in (None, 255)
    if "secondary_bus_number" in attrs:
        rec.bus_number_attrs = True
        rec.secondary_bus = A.parse_int(attrs["secondary_bus_number"])
        rec.subordinate_bus = A.parse_int(get("subordinate_bus_number", ""))
    if "serial_number" in attrs:
        rec.serial = A.parse_serial(attrs["serial_number"])
    if "sriov_totalvfs" in attrs:
        rec.sriov_attrs = True
        rec.sriov_total_vfs = A.parse_int(attrs["sriov_totalvfs"])
        rec.sriov_num_vfs = A.parse_int(get("sriov_numvfs", ""))
    if "reset_method" in attrs:
        rec.reset_methods = tuple(attrs["reset_method"].split())
    rec.power_state = get("power_state")
    text = get("resource")
    if text:
        _resources(rec, text)
    if not _AER_ATTR_NAMES.isdisjoint(attrs):  # no AER capability (thousands of VFs): nothing to do
        _aer(rec, attrs)


def _resources(rec: FunctionRecord, text: str) -> None:
    table = A.parse_resource(text)
    # Entries come in line order; a garbled line is skipped, so check before slicing by position.
    if len(table) >= 6 and table[5].index == 5:
        rec.bars = tuple(table[:6])
    else:
        rec.bars = tuple(r for r in table if r.index < 6)
    first = A.BRIDGE_WINDOW_FIRST_LINE
    if len(table) > first:  # only bridges have the window lines
        for r in table:
            if first <= r.index < first + 3:
                rec.windows[BRIDGE_WINDOW_NAMES[r.index - first]] = (r.start, r.size)


#: AER counter text -> its parse. Most functions of a machine have the same counters (all zero,
#: in the same kernel's names), ~20 lines per file and 3 files per function: parsed once, copied
#: for each function (copying a dict is C code, parsing its lines is not). Bounded: counts that
#: differ per function (a noisy machine) each take an entry, so the memo is dropped when full.
_AER_MEMO: dict[str, dict[str, int]] = {}
_AER_MEMO_MAX = 256


def _aer_counters(text: str) -> dict[str, int]:
    parsed = _AER_MEMO.get(text)
    if parsed is None:
        if len(_AER_MEMO) >= _AER_MEMO_MAX:
            _AER_MEMO.clear()
        parsed = _AER_MEMO[text] = A.parse_aer_counters(text)
    return parsed.copy()


def _aer(rec: FunctionRecord, attrs: dict[str, str]) -> None:
    aer: dict[str, dict[str, int]] = {}
    for key, name in _AER_FILES:
        if name in attrs:
            aer[key] = _aer_counters(attrs[name])
    rootport = {
        key: value
        for key, name in _AER_ROOT_FILES
        if name in attrs and (value := A.parse_int(attrs[name])) is not None
    }
    if rootport:
        aer["rootport_totals"] = rootport
    rec.aer = aer or None

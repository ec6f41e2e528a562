"""Decoding binary PCI configuration space (the sysfs `config` file).

The input may be 64 bytes (non-root reads), 256, 4096, truncated anywhere, all ones (device fell
off the bus) or garbage. Walks over the capability lists are bounded: a loop, a pointer into
the header or past the end stops the walk with a note instead of hanging or crashing. What
cannot be decoded stays None and a note says why.
"""

from __future__ import annotations

import struct

from accelctl.pci import regs
from accelctl.sysfs.attrs import format_serial

#: At most 48 standard capabilities fit between 0x40 and 0x100 (4-byte aligned, 2 bytes each at
#: least); the kernel uses the same bound (PCI_FIND_CAP_TTL).
_MAX_STD_CAPS = 48
#: (4096 - 256) / 8: the kernel's bound for extended-capability walks.
_MAX_EXT_CAPS = 480

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
#: vendor (0x00), device (0x02), status (0x06), revision+class (0x08), header type (0x0E)
_HEADER = struct.Struct("<HH2xHI2xB")


class _Record:
    """A plain slotted record with a dataclass-style repr.

    The decoder's results are plain classes, not dataclasses: @dataclass compiles generated
    source for every class at import, and this module is imported by every CLI run.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class PcieCap(_Record):
    """The PCI Express capability: port type, link capability and status, slot."""

    __slots__ = (
        "offset", "version", "port_type", "slot_implemented", "flr", "max_speed_gts", "max_width",
        "port_number", "speed_gts", "width", "dll_link_active", "slot_number", "hotplug_capable",
        "presence_detect", "supported_speeds_gts",
    )

    def __init__(self, offset: int, version: int, port_type: int, slot_implemented: bool) -> None:
        self.offset = offset
        self.version = version
        self.port_type = port_type
        self.slot_implemented = slot_implemented
        self.flr: bool | None = None
        self.max_speed_gts: float | None = None
        self.max_width: int | None = None
        self.port_number: int | None = None
        self.speed_gts: float | None = None
        self.width: int | None = None
        self.dll_link_active: bool | None = None
        self.slot_number: int | None = None
        self.hotplug_capable: bool | None = None
        self.presence_detect: bool | None = None
        self.supported_speeds_gts: tuple[float, ...] = ()


class ConfigSpace(_Record):
    """What a config-space read told us. None means "could not be read", never "zero"."""

    __slots__ = (
        "size", "header_only", "all_ones", "vendor_id", "device_id", "class_code", "revision",
        "subsystem_vendor_id", "subsystem_id", "header_type", "multifunction", "has_cap_list",
        "primary_bus", "secondary_bus", "subordinate_bus", "bridge_control", "mem_window",
        "pref_window", "caps_complete", "ext_caps_complete", "cap_ids", "ext_cap_ids", "pcie",
        "dsn", "acs_cap", "acs_ctrl", "aer_uncor_status", "aer_cor_status", "sriov_total_vfs",
        "sriov_num_vfs", "sriov_vf_device", "dpc_status", "has_rebar", "notes",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        #: decoded to the common header only (decode_config(header_only=True))
        self.header_only = False
        self.all_ones = False
        self.vendor_id: int | None = None
        self.device_id: int | None = None
        self.class_code: int | None = None
        self.revision: int | None = None
        self.subsystem_vendor_id: int | None = None
        self.subsystem_id: int | None = None
        self.header_type: int | None = None
        self.multifunction: bool | None = None
        self.has_cap_list: bool | None = None
        self.primary_bus: int | None = None
        self.secondary_bus: int | None = None
        self.subordinate_bus: int | None = None
        self.bridge_control: int | None = None
        #: bridge windows (base, limit) inclusive; None when the window is disabled (limit < base)
        self.mem_window: tuple[int, int] | None = None
        self.pref_window: tuple[int, int] | None = None
        #: standard caps walked completely (False: 64-byte read, truncated or a broken list)
        self.caps_complete = False
        self.ext_caps_complete = False
        self.cap_ids: list[int] = []
        self.ext_cap_ids: list[int] = []
        self.pcie: PcieCap | None = None
        self.dsn: str | None = None
        self.acs_cap: int | None = None
        self.acs_ctrl: int | None = None
        self.aer_uncor_status: int | None = None
        self.aer_cor_status: int | None = None
        self.sriov_total_vfs: int | None = None
        self.sriov_num_vfs: int | None = None
        #: the SR-IOV capability's VF Device ID (what the kernel calls this PF's VFs)
        self.sriov_vf_device: int | None = None
        self.dpc_status: int | None = None
        self.has_rebar = False
        self.notes: list[str] = []


def vf_ids(cfg: ConfigSpace) -> tuple[int, int] | None:
    """(vendor, device) the kernel gives an SR-IOV PF's VFs: the PF's vendor and its SR-IOV
    capability's VF Device ID (a VF's own id registers read ffff). None when config cannot say."""
    if cfg.sriov_vf_device is None or cfg.vendor_id is None or cfg.vendor_id == 0xFFFF:
        return None
    return cfg.vendor_id, cfg.sriov_vf_device


def _u8(data: bytes, off: int) -> int | None:
    return data[off] if off < len(data) else None


def _u16(data: bytes, off: int) -> int | None:
    return _U16.unpack_from(data, off)[0] if off + 2 <= len(data) else None


def _u32(data: bytes, off: int) -> int | None:
    return _U32.unpack_from(data, off)[0] if off + 4 <= len(data) else None


def find_capability(data: bytes, cap_id: int) -> int | None:
    """Offset of standard capability `cap_id`, or None (absent, unreadable, or a broken list).

    A bounded walk for callers that need one capability, not a full decode (the scan, writers).
    """
    if len(data) < 0x40 or not data[regs.STATUS] & regs.STATUS_CAP_LIST:
        return None
    ptr = data[regs.CAPABILITY_LIST] & 0xFC
    for _ in range(_MAX_STD_CAPS):
        if ptr < 0x40 or ptr + 2 > len(data):
            return None
        if data[ptr] == cap_id:
            return ptr
        ptr = data[ptr + 1] & 0xFC
    return None


def find_ext_capability(data: bytes, cap_id: int) -> int | None:
    """Offset of extended capability `cap_id`, or None. Bounded like find_capability."""
    ptr = regs.EXT_CAP_START
    for _ in range(_MAX_EXT_CAPS):
        if ptr < regs.EXT_CAP_START or ptr + 4 > len(data):
            return None
        header = _U32.unpack_from(data, ptr)[0]
        if header in (0, 0xFFFFFFFF):
            return None
        if header & 0xFFFF == cap_id:
            return ptr
        ptr = (header >> 20) & 0xFFC
    return None


def decode_config(data: bytes, *, header_only: bool = False) -> ConfigSpace:
    """Decode whatever part of config space `data` holds. Never raises on any input.

    `header_only` stops after the common header (ids, class, header type, bridge buses): for
    SR-IOV VFs, whose link, serial, ACS and AER are the PF's, on machines with thousands of them.
    """
    cfg = ConfigSpace(size=len(data))
    if len(data) >= 4 and data == b"\xff" * len(data):
        # A dead device answers every read with all ones (Xid 79, surprise removal). Only the
        # whole space counts: an SR-IOV VF legitimately reads ffff as vendor and device id.
        cfg.all_ones = True
        cfg.notes.append("config space reads all ones (device not responding: fell off the bus?)")
        return cfg
    if len(data) >= regs.UNPRIVILEGED_CONFIG_BYTES:
        # The whole common header is there: one unpack instead of a bounds check per field
        # (this runs for every function, thousands of VFs included).
        vendor, device, status, cls, ht = _HEADER.unpack_from(data)
        cfg.vendor_id, cfg.device_id = vendor, device
    else:
        cfg.vendor_id = _u16(data, regs.VENDOR_ID)
        cfg.device_id = _u16(data, regs.DEVICE_ID)
        cls = _u32(data, regs.REVISION_ID)
        ht = _u8(data, regs.HEADER_TYPE)
        status = _u16(data, regs.STATUS)
    if cls is not None:
        cfg.revision = cls & 0xFF
        cfg.class_code = cls >> 8
    if ht is not None:
        cfg.header_type = ht & regs.HEADER_TYPE_MASK
        cfg.multifunction = bool(ht & regs.HEADER_MULTIFUNCTION)
    if status is not None:
        cfg.has_cap_list = bool(status & regs.STATUS_CAP_LIST)
    if cfg.header_type == regs.HEADER_BRIDGE:
        _decode_bridge(data, cfg)
    elif cfg.header_type == regs.HEADER_NORMAL:
        cfg.subsystem_vendor_id = _u16(data, regs.SUBSYSTEM_VENDOR_ID)
        cfg.subsystem_id = _u16(data, regs.SUBSYSTEM_ID)
    if header_only:
        cfg.header_only = True
        return cfg
    if len(data) < regs.STANDARD_CONFIG_BYTES:
        if len(data) <= regs.UNPRIVILEGED_CONFIG_BYTES:
            cfg.notes.append(
                f"only {len(data)} bytes of config space readable (needs root): capabilities unknown"
            )
        else:
            cfg.notes.append(f"config space truncated at {len(data)} bytes")
    if cfg.has_cap_list:
        _walk_caps(data, cfg)
    else:
        cfg.caps_complete = len(data) >= regs.UNPRIVILEGED_CONFIG_BYTES and status is not None
    if len(data) > regs.EXT_CAP_START and cfg.pcie is not None:
        _walk_ext_caps(data, cfg)
    elif len(data) == regs.STANDARD_CONFIG_BYTES:
        cfg.ext_caps_complete = True  # no extended space at all: nothing is missing
    return cfg


def _decode_bridge(data: bytes, cfg: ConfigSpace) -> None:
    cfg.primary_bus = _u8(data, regs.PRIMARY_BUS)
    cfg.secondary_bus = _u8(data, regs.SECONDARY_BUS)
    cfg.subordinate_bus = _u8(data, regs.SUBORDINATE_BUS)
    cfg.bridge_control = _u16(data, regs.BRIDGE_CONTROL)
    mb, ml = _u16(data, regs.MEMORY_BASE), _u16(data, regs.MEMORY_LIMIT)
    if mb is not None and ml is not None:
        base, limit = (mb & 0xFFF0) << 16, ((ml & 0xFFF0) << 16) | 0xFFFFF
        cfg.mem_window = (base, limit) if limit > base else None
    pb, pl = _u16(data, regs.PREF_MEMORY_BASE), _u16(data, regs.PREF_MEMORY_LIMIT)
    if pb is not None and pl is not None:
        base, limit = (pb & 0xFFF0) << 16, ((pl & 0xFFF0) << 16) | 0xFFFFF
        if pb & 0x1:  # 64-bit prefetchable window: upper halves at 0x28 / 0x2c
            bu, lu = _u32(data, regs.PREF_BASE_UPPER32), _u32(data, regs.PREF_LIMIT_UPPER32)
            if bu is not None and lu is not None:
                base |= bu << 32
                limit |= lu << 32
        cfg.pref_window = (base, limit) if limit > base else None


def _walk_caps(data: bytes, cfg: ConfigSpace) -> None:
    ptr = _u8(data, regs.CAPABILITY_LIST)
    if ptr is None:
        return
    seen: set[int] = set()
    for _ in range(_MAX_STD_CAPS):
        ptr &= 0xFC
        if ptr == 0:
            cfg.caps_complete = True
            return
        if ptr < 0x40:
            cfg.notes.append(f"capability pointer 0x{ptr:02x} points into the header")
            return
        if ptr in seen:
            cfg.notes.append(f"capability list loops at 0x{ptr:02x}")
            return
        if ptr + 2 > len(data):
            # Not a fault when the read was privilege-limited: the decode note says so already.
            if len(data) > regs.UNPRIVILEGED_CONFIG_BYTES:
                cfg.notes.append(f"capability at 0x{ptr:02x} lies past the readable config")
            return
        seen.add(ptr)
        cap_id, nxt = data[ptr], data[ptr + 1]
        cfg.cap_ids.append(cap_id)
        if cap_id == regs.CAP_ID_EXP and cfg.pcie is None:
            cfg.pcie = _decode_pcie(data, ptr)
        elif cap_id == regs.CAP_ID_SSVID and cfg.header_type == regs.HEADER_BRIDGE:
            # Bridges keep subsystem ids in this capability, not at 0x2c.
            cfg.subsystem_vendor_id = _u16(data, ptr + 4)
            cfg.subsystem_id = _u16(data, ptr + 6)
        ptr = nxt
    cfg.notes.append("capability list too long (more than 48 entries)")


def _width(value: int) -> int | None:
    return value if value in (0, 1, 2, 4, 8, 12, 16, 32) else None


#: The PCIe capability's registers up to Link Capabilities 2 (0x2C), in one unpack: flags (0x02),
#: device capabilities (0x04), link capabilities (0x0C), link status (0x12), slot capabilities
#: (0x14), slot status (0x1A), link capabilities 2 (0x2C). Every port and endpoint has one.
_PCIE_CAP = struct.Struct("<2xHI4xI2xHI2xH16xI")
#: LNKCAP2's supported-speeds vector -> the speeds it names, ascending (few distinct vectors).
_SPEEDS_BY_VECTOR: dict[int, tuple[float, ...]] = {}


def _supported_speeds(vector: int) -> tuple[float, ...]:
    speeds = _SPEEDS_BY_VECTOR.get(vector)
    if speeds is None:
        speeds = _SPEEDS_BY_VECTOR[vector] = tuple(
            gts for code, gts in sorted(regs.SPEED_GTS.items()) if vector & (1 << (code - 1))
        )
    return speeds


def _decode_pcie(data: bytes, base: int) -> PcieCap:
    if base + _PCIE_CAP.size <= len(data):
        # The whole capability is there (every full read): one unpack, no bounds check per field.
        flags, devcap, lnkcap, lnksta, sltcap, sltsta, lnkcap2 = _PCIE_CAP.unpack_from(data, base)
    else:
        flags = _u16(data, base + regs.EXP_FLAGS) or 0
        devcap = _u32(data, base + regs.EXP_DEVCAP)
        lnkcap = _u32(data, base + regs.EXP_LNKCAP)
        lnksta = _u16(data, base + regs.EXP_LNKSTA)
        sltcap = _u32(data, base + regs.EXP_SLTCAP)
        sltsta = _u16(data, base + regs.EXP_SLTSTA)
        lnkcap2 = _u32(data, base + regs.EXP_LNKCAP2)
    cap = PcieCap(
        offset=base,
        version=flags & regs.EXP_FLAGS_VERS,
        port_type=(flags & regs.EXP_FLAGS_TYPE) >> 4,
        slot_implemented=bool(flags & regs.EXP_FLAGS_SLOT),
    )
    speeds = regs.SPEED_GTS
    if devcap is not None:
        cap.flr = bool(devcap & regs.EXP_DEVCAP_FLR)
    if lnkcap is not None:
        cap.max_speed_gts = speeds.get(lnkcap & 0xF)
        cap.max_width = _width((lnkcap >> 4) & 0x3F)
        cap.port_number = lnkcap >> 24
    if lnksta is not None:
        cap.speed_gts = speeds.get(lnksta & 0xF)
        cap.width = _width((lnksta >> 4) & 0x3F)
        cap.dll_link_active = bool(lnksta & regs.EXP_LNKSTA_DLLLA)
    if cap.slot_implemented:
        if sltcap is not None:
            cap.slot_number = sltcap >> regs.EXP_SLTCAP_PSN_SHIFT
            cap.hotplug_capable = bool(sltcap & regs.EXP_SLTCAP_HPC)
        if sltsta is not None:
            cap.presence_detect = bool(sltsta & regs.EXP_SLTSTA_PDS)
    if cap.version >= 2 and lnkcap2:
        cap.supported_speeds_gts = _supported_speeds((lnkcap2 >> 1) & 0x7F)
        if cap.supported_speeds_gts:
            # LNKCAP's max-speed field indexes this vector; the vector's top bit is what
            # the kernel reports as max_link_speed (pcie_get_speed_cap).
            cap.max_speed_gts = cap.supported_speeds_gts[-1]
    return cap


def _walk_ext_caps(data: bytes, cfg: ConfigSpace) -> None:
    ptr = regs.EXT_CAP_START
    seen: set[int] = set()
    for _ in range(_MAX_EXT_CAPS):
        if ptr in seen:
            cfg.notes.append(f"extended capability list loops at 0x{ptr:03x}")
            return
        if ptr < regs.EXT_CAP_START or ptr + 4 > len(data):
            cfg.notes.append(f"extended capability pointer 0x{ptr:03x} out of range")
            return
        seen.add(ptr)
        header = _U32.unpack_from(data, ptr)[0]
        if header in (0, 0xFFFFFFFF):
            # No extended capabilities (or no extended space: VMs without ECAM read 0xff).
            cfg.ext_caps_complete = True
            return
        cap_id, nxt = header & 0xFFFF, (header >> 20) & 0xFFC
        cfg.ext_cap_ids.append(cap_id)
        _decode_ext(data, ptr, cap_id, cfg)
        if nxt == 0:
            cfg.ext_caps_complete = True
            return
        ptr = nxt
    cfg.notes.append("extended capability list too long")


def _decode_ext(data: bytes, ptr: int, cap_id: int, cfg: ConfigSpace) -> None:
    if cap_id == regs.EXT_CAP_ID_DSN:
        lo, hi = _u32(data, ptr + regs.DSN_LOW), _u32(data, ptr + regs.DSN_HIGH)
        if lo is not None and hi is not None:
            cfg.dsn = format_serial((hi << 32) | lo)
    elif cap_id == regs.EXT_CAP_ID_ACS:
        cfg.acs_cap = _u16(data, ptr + regs.ACS_CAP)
        cfg.acs_ctrl = _u16(data, ptr + regs.ACS_CTRL)
    elif cap_id == regs.EXT_CAP_ID_ERR:
        cfg.aer_uncor_status = _u32(data, ptr + regs.ERR_UNCOR_STATUS)
        cfg.aer_cor_status = _u32(data, ptr + regs.ERR_COR_STATUS)
    elif cap_id == regs.EXT_CAP_ID_SRIOV:
        cfg.sriov_total_vfs = _u16(data, ptr + regs.SRIOV_TOTAL_VF)
        cfg.sriov_num_vfs = _u16(data, ptr + regs.SRIOV_NUM_VF)
        cfg.sriov_vf_device = _u16(data, ptr + regs.SRIOV_VF_DID)
    elif cap_id == regs.EXT_CAP_ID_DPC:
        cfg.dpc_status = _u16(data, ptr + regs.DPC_STATUS)
    elif cap_id == regs.EXT_CAP_ID_REBAR:
        cfg.has_rebar = True

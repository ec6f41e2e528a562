"""PCI configuration-space register layout and encodings (include/uapi/linux/pci_regs.h).

Pure constants and tiny pure conversions shared by the parser (accelctl.sysfs) and the fixture
builder (accelctl.sim.fixture). Nothing here reads or writes files.
"""

from __future__ import annotations

import enum

# --- common header ---------------------------------------------------------------------------
VENDOR_ID = 0x00
DEVICE_ID = 0x02
COMMAND = 0x04
STATUS = 0x06
STATUS_CAP_LIST = 0x10
REVISION_ID = 0x08
CLASS_PROG = 0x09  # prog-if, then subclass (0x0a) and base class (0x0b): 24-bit class at 0x09
HEADER_TYPE = 0x0E
HEADER_TYPE_MASK = 0x7F
HEADER_MULTIFUNCTION = 0x80
HEADER_NORMAL = 0
HEADER_BRIDGE = 1
HEADER_CARDBUS = 2
BAR0 = 0x10
CAPABILITY_LIST = 0x34
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D

# type 0
SUBSYSTEM_VENDOR_ID = 0x2C
SUBSYSTEM_ID = 0x2E
ROM_ADDRESS = 0x30

# type 1 (bridge)
PRIMARY_BUS = 0x18
SECONDARY_BUS = 0x19
SUBORDINATE_BUS = 0x1A
IO_BASE = 0x1C
IO_LIMIT = 0x1D
MEMORY_BASE = 0x20
MEMORY_LIMIT = 0x22
PREF_MEMORY_BASE = 0x24
PREF_MEMORY_LIMIT = 0x26
PREF_BASE_UPPER32 = 0x28
PREF_LIMIT_UPPER32 = 0x2C
BRIDGE_CONTROL = 0x3E
BRIDGE_CTL_BUS_RESET = 0x40

# BAR bits
BAR_SPACE_IO = 0x01
BAR_MEM_TYPE_MASK = 0x06
BAR_MEM_TYPE_64 = 0x04
BAR_MEM_PREFETCH = 0x08

#: Bytes of config space a process without CAP_SYS_ADMIN gets from sysfs `config`.
UNPRIVILEGED_CONFIG_BYTES = 64
STANDARD_CONFIG_BYTES = 256
EXTENDED_CONFIG_BYTES = 4096
EXT_CAP_START = 0x100

# --- standard capabilities -----------------------------------------------------------------
CAP_ID_PM = 0x01
CAP_ID_MSI = 0x05
CAP_ID_VNDR = 0x09
CAP_ID_SSVID = 0x0D
CAP_ID_EXP = 0x10
CAP_ID_MSIX = 0x11
CAP_ID_AF = 0x13

# PCI Express capability, offsets from the capability base
EXP_FLAGS = 0x02
EXP_FLAGS_VERS = 0x000F
EXP_FLAGS_TYPE = 0x00F0
EXP_FLAGS_SLOT = 0x0100
EXP_DEVCAP = 0x04
EXP_DEVCAP_FLR = 1 << 28
EXP_DEVCTL = 0x08
EXP_DEVSTA = 0x0A
EXP_LNKCAP = 0x0C
EXP_LNKCTL = 0x10
EXP_LNKSTA = 0x12
EXP_LNKSTA_DLLLA = 1 << 13
EXP_SLTCAP = 0x14
EXP_SLTCAP_HPC = 1 << 6
EXP_SLTCAP_PSN_SHIFT = 19
EXP_SLTCTL = 0x18
EXP_SLTSTA = 0x1A
EXP_SLTSTA_PDS = 1 << 6
EXP_DEVCAP2 = 0x24
EXP_LNKCAP2 = 0x2C
EXP_LNKCTL2 = 0x30
EXP_LNKSTA2 = 0x32
#: Size of a version-2 PCIe capability (through SLTSTA2); a v1 one ends after SLTSTA/RTSTA.
EXP_CAP_V2_SIZE = 0x3C


class PortType(enum.IntEnum):
    """PCIe device/port type from the PCIe capability flags, bits 7:4."""

    ENDPOINT = 0x0
    LEGACY_ENDPOINT = 0x1
    ROOT_PORT = 0x4
    UPSTREAM = 0x5
    DOWNSTREAM = 0x6
    PCIE_TO_PCI_BRIDGE = 0x7
    PCI_TO_PCIE_BRIDGE = 0x8
    RC_ENDPOINT = 0x9
    RC_EVENT_COLLECTOR = 0xA


# --- extended capabilities -----------------------------------------------------------------
EXT_CAP_ID_ERR = 0x0001  # AER
EXT_CAP_ID_VC = 0x0002
EXT_CAP_ID_DSN = 0x0003
EXT_CAP_ID_VNDR = 0x000B
EXT_CAP_ID_ACS = 0x000D
EXT_CAP_ID_ARI = 0x000E
EXT_CAP_ID_ATS = 0x000F
EXT_CAP_ID_SRIOV = 0x0010
EXT_CAP_ID_REBAR = 0x0015
EXT_CAP_ID_LTR = 0x0018
EXT_CAP_ID_SECPCI = 0x0019
EXT_CAP_ID_DPC = 0x001D
EXT_CAP_ID_L1SS = 0x001E

# AER, offsets from the capability
ERR_UNCOR_STATUS = 0x04
ERR_UNCOR_MASK = 0x08
ERR_UNCOR_SEVER = 0x0C
ERR_COR_STATUS = 0x10
ERR_COR_MASK = 0x14
ERR_CAP = 0x18
AER_CAP_SIZE = 0x48  # root-port sized; endpoints use 0x2C+

# DSN
DSN_LOW = 0x04
DSN_HIGH = 0x08

# ACS
ACS_CAP = 0x04
ACS_CTRL = 0x06


class AcsBit(enum.IntFlag):
    """ACS capability/control bits."""

    SV = 0x01  # source validation
    TB = 0x02  # translation blocking
    RR = 0x04  # P2P request redirect
    CR = 0x08  # P2P completion redirect
    UF = 0x10  # upstream forwarding
    EC = 0x20  # P2P egress control
    DT = 0x40  # direct translated P2P


#: Control bits that force peer-to-peer traffic up to the root complex: what Linux's
#: pci=disable_acs_redir= clears.
ACS_P2P_BLOCKING = AcsBit.RR | AcsBit.CR | AcsBit.EC

# SR-IOV
SRIOV_CTRL = 0x08
SRIOV_CTRL_VFE = 0x01
SRIOV_INITIAL_VF = 0x0C
SRIOV_TOTAL_VF = 0x0E
SRIOV_NUM_VF = 0x10
SRIOV_VF_OFFSET = 0x14
SRIOV_VF_STRIDE = 0x16
SRIOV_VF_DID = 0x1A

# Resizable BAR
REBAR_CAP = 0x04
REBAR_CTRL = 0x08

# DPC
DPC_CAP = 0x04
DPC_CTL = 0x06
DPC_STATUS = 0x08
DPC_STATUS_TRIGGER = 0x01
DPC_SOURCE_ID = 0x0A

# --- link speeds ----------------------------------------------------------------------------
#: LNKCAP/LNKSTA speed encoding -> GT/s (the encoding indexes the supported-speeds vector).
SPEED_GTS = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}
GTS_SPEED = {gts: code for code, gts in SPEED_GTS.items()}
#: PCIe generation -> GT/s.
GEN_GTS = SPEED_GTS


def speed_string(gts: float | None, *, legacy: bool = False) -> str:
    """The text Linux puts in current_link_speed/max_link_speed for a speed.

    Modern kernels print ``pci_speed_string()`` ("16.0 GT/s PCIe", "Unknown"); kernels up to
    about 5.6 printed "16 GT/s" and "Unknown speed" (see reference sysfs-and-config-space 2.4).
    """
    if gts is None:
        return "Unknown speed" if legacy else "Unknown"
    if legacy:
        return f"{gts:g} GT/s"
    return f"{gts:.1f} GT/s PCIe"


# --- classes --------------------------------------------------------------------------------
CLASS_BRIDGE_HOST = 0x0600
CLASS_BRIDGE_PCI = 0x0604
#: Full class code of a subtractive-decode PCI-to-PCI bridge (prog-if 01): a conventional bridge
#: that also forwards what no one else claims; never a PCIe port.
CLASS_BRIDGE_SUBTRACTIVE = 0x060401
CLASS_STORAGE_NVME = 0x0108
CLASS_STORAGE_RAID = 0x0104  # VMD controllers use 0x010400


"""Run lspci on a sysfs tree and parse what it decodes: the independent judge of our parsing.

Only stdout is parsed (stderr carries sandbox noise such as libkmod messages), and always with
-n so the host's pci.ids version cannot change the text.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_PORT_TYPES = {
    "Endpoint": "endpoint",
    "Legacy Endpoint": "endpoint",
    "Root Port": "root_port",
    "Upstream Port": "switch_upstream",
    "Downstream Port": "switch_downstream",
    "PCI-Express to PCI/PCI-X Bridge": "pci_bridge",
    "PCI/PCI-X to PCI-Express Bridge": "pci_bridge",
    "Root Complex Integrated Endpoint": "rc_endpoint",
    "Root Complex Event Collector": "rc_event_collector",
}
_ACS_BITS = {"SrcValid": "SV", "TransBlk": "TB", "ReqRedir": "RR", "CmpltRedir": "CR",
             "UpstreamFwd": "UF", "EgressCtrl": "EC", "DirectTrans": "DT"}


@dataclass
class LspciDevice:
    bdf: str
    class_hex: str
    vendor: str
    device: str
    parent: str | None = None  # BDF, or None on a root bus
    bus: tuple[int, int, int] | None = None  # primary, secondary, subordinate
    port_kind: str | None = None
    lnkcap: tuple[float | None, int | None] | None = None
    lnksta: tuple[float | None, int | None] | None = None
    lnksta_downgraded: bool = False
    serial: str | None = None
    acs_ctl: set[str] | None = None
    numa: int | None = None
    iommu_group: int | None = None
    phys_slot: str | None = None
    driver: str | None = None
    #: memory BARs with an address: index -> (start, size, is_64bit, prefetchable)
    bars: dict[int, tuple[int, int, bool, bool]] = field(default_factory=dict)
    #: bridge windows with a range: "mem_window" / "pref_window" -> (start, end) inclusive
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


_REGION = re.compile(r"Region (\d): Memory at ([0-9a-f]+) \((32|64)-bit, (non-)?prefetchable\)"
                     r".*\[size=(\d+)([KMGT]?)\]")
_WINDOW = re.compile(r"(Prefetchable memory|Memory) behind bridge: ([0-9a-f]+)-([0-9a-f]+)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def run_lspci(tree: Path, *flags: str) -> str:
    return subprocess.run(
        ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={tree}/bus/pci", *flags],
        capture_output=True, text=True, check=True,
    ).stdout


def _speed(text: str) -> float | None:
    m = re.match(r"([0-9.]+)GT/s", text)
    return float(m.group(1)) if m else None


def _link(line: str) -> tuple[float | None, int | None]:
    speed = re.search(r"Speed ([^,]+)", line)
    width = re.search(r"Width x(\d+)", line)
    return (_speed(speed.group(1)) if speed else None, int(width.group(1)) if width else None)


def parse(tree: Path) -> dict[str, LspciDevice]:
    devices: dict[str, LspciDevice] = {}
    for line in run_lspci(tree, "-PP", "-n", "-D").splitlines():
        path, cls, ids = line.split(" ", 2)
        elems = path.split("/")
        domain = elems[0].split(":")[0]
        bdf = elems[-1] if len(elems) == 1 else f"{domain}:{elems[-1]}"
        parent = None if len(elems) == 1 else (elems[-2] if len(elems) == 2 else f"{domain}:{elems[-2]}")
        vendor, device = ids.split()[0].split(":")
        devices[bdf] = LspciDevice(bdf, cls.rstrip(":"), vendor, device, parent)
    current: LspciDevice | None = None
    for line in run_lspci(tree, "-vv", "-n", "-D", "-k").splitlines():
        if not line.strip():
            current = None
            continue
        if not line[0].isspace():
            current = devices.get(line.split()[0])
            continue
        if current is None:
            continue
        s = line.strip()
        current.lines.append(s)
        if s.startswith("Bus: primary="):
            m = re.match(r"Bus: primary=(\w+), secondary=(\w+), subordinate=(\w+)", s)
            current.bus = tuple(int(g, 16) for g in m.groups())  # type: ignore[union-attr]
        elif "Express (v" in s and "Capabilities:" in s:
            m = re.search(r"Express \(v\d\) (.+?)(?: \(Slot[+-]\))?, (?:MSI|IntMsgNum)", s)
            if m:
                current.port_kind = _PORT_TYPES.get(m.group(1))
        elif s.startswith("LnkCap:"):
            current.lnkcap = _link(s)
        elif s.startswith("LnkSta:"):
            current.lnksta = _link(s)
            current.lnksta_downgraded = "downgraded" in s
        elif "Device Serial Number" in s:
            current.serial = s.rsplit(" ", 1)[1]
        elif s.startswith("ACSCtl:"):
            current.acs_ctl = {_ACS_BITS[n] for n, v in re.findall(r"(\w+)([+-])", s) if v == "+" and n in _ACS_BITS}
        elif s.startswith("NUMA node:"):
            current.numa = int(s.split(":")[1])
        elif s.startswith("IOMMU group:"):
            current.iommu_group = int(s.split(":")[1])
        elif s.startswith("Physical Slot:"):
            current.phys_slot = s.split(":", 1)[1].strip()
        elif s.startswith("Region ") and (m := _REGION.match(s)):
            index, start, bits, non, size, unit = m.groups()
            current.bars[int(index)] = (int(start, 16), int(size) * _UNITS[unit], bits == "64", non is None)
        elif m := _WINDOW.match(s):
            name = "pref_window" if m.group(1).startswith("Prefetchable") else "mem_window"
            current.windows[name] = (int(m.group(2), 16), int(m.group(3), 16))
        elif s.startswith("Kernel driver in use:"):
            current.driver = s.split(":", 1)[1].strip()
    return devices

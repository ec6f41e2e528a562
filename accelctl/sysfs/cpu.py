"""The CPU's vendor and family, as far as a sysfs tree tells them.

Linux's p2pdma allows peer-to-peer through the root complex on every AMD CPU of family 0x17
(Zen) or newer, whatever the host bridge is; nothing else about the CPU matters to accelctl.

Sources, in order: ``devices/system/cpu/modalias`` (x86 kernels since 2012:
``cpu:type:x86,ven0002fam0019mod0001:feature:...``, the vendor as the kernel's X86_VENDOR_*
number), then ``proc/cpuinfo`` beside the tree when the root is a ``sys`` folder (the live /sys
and captures of a whole machine such as hwloc's). A root with neither leaves the CPU unknown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from accelctl.sysfs.root import SysfsRoot, Unreadable, read_text

#: The kernel's X86_VENDOR_* numbers (arch/x86/include/asm/processor.h) that matter here.
_X86_VENDORS = {0: "intel", 2: "amd", 9: "hygon", 10: "zhaoxin"}
_CPUINFO_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon"}
_MODALIAS = re.compile(r"cpu:type:([^,:]+)(?:,ven([0-9A-Fa-f]{4})fam([0-9A-Fa-f]{4}))?")


@dataclass(frozen=True, slots=True)
class CpuIdentity:
    #: "x86", "aarch64", ... as the kernel's modalias names the architecture (x86 from cpuinfo)
    arch: str
    #: "intel", "amd", ... for x86 (None: another vendor or not x86)
    vendor: str | None
    family: int | None
    #: where it was read: the file, relative to the sysfs root (or to its parent for proc/)
    source: str

    def __str__(self) -> str:
        family = "" if self.family is None else f" family {self.family:#x}"
        return f"{self.vendor or self.arch}{family}"


def read_cpu_identity(root: SysfsRoot) -> CpuIdentity | None:
    """The CPU of the machine `root` describes, or None when the tree does not say."""
    try:
        modalias = read_text(root.join("devices", "system", "cpu", "modalias"))
    except Unreadable:
        modalias = None
    if modalias:
        m = _MODALIAS.match(modalias)
        if m:
            arch, ven, fam = m.group(1), m.group(2), m.group(3)
            vendor = _X86_VENDORS.get(int(ven, 16)) if ven else None
            return CpuIdentity(arch, vendor, int(fam, 16) if fam else None, "devices/system/cpu/modalias")
    if os.path.basename(str(root.path)) != "sys":
        return None
    return _from_cpuinfo(os.path.join(os.path.dirname(str(root.path)), "proc", "cpuinfo"))


def _from_cpuinfo(path: str) -> CpuIdentity | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in head.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    vendor_id = fields.get("vendor_id")
    if vendor_id is None:
        return None
    family = fields.get("cpu family", "")
    return CpuIdentity("x86", _CPUINFO_VENDORS.get(vendor_id), int(family) if family.isdigit() else None,
                       "proc/cpuinfo")

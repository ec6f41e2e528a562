"""Pure parsers for PCI sysfs attribute text (Documentation/ABI/testing/sysfs-bus-pci).

Every function takes the raw text of one attribute and returns a typed value, or None when the
text says "unknown". They never do I/O; accelctl.sysfs.scan reads the files.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_SPEED = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*GT/s")

#: Link widths a port can train to, plus 0 (link down: an empty slot, a dead link). Anything else
#: means unknown (63: LNKSTA read all ones; 255: legacy kernels on non-PCIe devices).
VALID_WIDTHS = frozenset({0, 1, 2, 4, 8, 12, 16, 32})


def parse_hex(text: str) -> int | None:
    """``0x10de`` -> 0x10de; None when not a hex number."""
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def parse_int(text: str) -> int | None:
    """Decimal integer attribute (numa_node, *_bus_number, sriov_*); None when not a number."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        return None


def parse_link_speed(text: str) -> float | None:
    """current_link_speed / max_link_speed in every dialect -> GT/s, None when unknown.

    Modern: "16.0 GT/s PCIe"; kernels up to ~5.6: "16 GT/s"; "Unknown", "Unknown speed" and
    anything unparseable (a dead link reads garbage) are None.
    """
    m = _SPEED.match(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if value > 0 else None


def parse_link_width(text: str) -> int | None:
    """current_link_width / max_link_width -> lanes (0 = link down), None when unknown."""
    value = parse_int(text)
    if value is None or value not in VALID_WIDTHS:
        return None
    return value


# IORESOURCE_* flags from include/linux/ioport.h. These three kept their bit in every kernel:
IORESOURCE_IO = 0x100
IORESOURCE_MEM = 0x200
IORESOURCE_MEM_64 = 0x100000
#: IORESOURCE_PREFETCH today. Kernels before IORESOURCE_BUS took bit 0x1000 (2012) wrote it as
#: 0x1000, and every flag from there up to STARTALIGN one bit lower (SIZEALIGN 0x20000, not
#: 0x40000): a Xeon Phi's 64-bit prefetchable BAR reads 0x12120c on such a kernel.
IORESOURCE_PREFETCH = 0x2000
IORESOURCE_PREFETCH_OLD = 0x1000
#: IORESOURCE_SIZEALIGN today; the old layout had it at 0x20000 (the new SHADOWABLE).
IORESOURCE_SIZEALIGN = 0x40000
IORESOURCE_SIZEALIGN_OLD = 0x20000
IORESOURCE_UNSET = 0x20000000
IORESOURCE_DISABLED = 0x10000000
#: The low byte of a BAR's flags is the BAR register's own type bits (the kernel keeps them when
#: it decodes the BAR), the same in every era: bit 3 prefetchable, bits 2:1 = 0b10 for 64-bit.
BAR_TYPE_PREFETCH = 0x08
BAR_TYPE_MASK = 0x06
BAR_TYPE_64 = 0x04

#: Line index of the first bridge window in a 17-line `resource` table (BAR0-5, ROM, 6 IOV BARs).
BRIDGE_WINDOW_FIRST_LINE = 13
_ROM_LINE = 6
#: Lines whose low flag byte holds BAR type bits: BAR0-5 and the six SR-IOV VF BARs.
_BAR_LINES = frozenset((*range(0, 6), *range(7, 13)))
_IO_WINDOW_LINE, _MEM_WINDOW_LINE, _PREF_WINDOW_LINE = 13, 14, 15


def resource_prefetchable(index: int, flags: int) -> bool:
    """Whether a `resource` line is prefetchable memory, in the flag layout of any kernel.

    A BAR says so in its own type bits; a bridge window by its line (13 I/O, 14 memory, 15
    prefetchable); anything else (the ROM) by the era's IORESOURCE_PREFETCH bit.
    """
    if not flags & IORESOURCE_MEM:
        return False
    if index in _BAR_LINES:
        return bool(flags & BAR_TYPE_PREFETCH)
    if index >= BRIDGE_WINDOW_FIRST_LINE:
        return index == _PREF_WINDOW_LINE
    return bool(flags & (IORESOURCE_PREFETCH_OLD if old_flag_layout(flags) else IORESOURCE_PREFETCH))


def old_flag_layout(flags: int) -> bool:
    """True when memory/I-O flags are in the layout of kernels before 2012: bit 0x1000 (today
    IORESOURCE_BUS, which no memory or I/O resource carries) or the old SIZEALIGN without the
    new one."""
    if not flags & (IORESOURCE_MEM | IORESOURCE_IO):
        return False
    return bool(flags & IORESOURCE_PREFETCH_OLD) or (
        bool(flags & IORESOURCE_SIZEALIGN_OLD) and not flags & IORESOURCE_SIZEALIGN
    )


class Resource(NamedTuple):
    """One line of the sysfs `resource` table (a tuple: thousands are made per scan)."""

    index: int
    start: int
    end: int
    flags: int

    @property
    def size(self) -> int:
        if self.start == 0 and self.end == 0:
            return 0
        return self.end - self.start + 1

    @property
    def is_io(self) -> bool:
        return bool(self.flags & IORESOURCE_IO)

    @property
    def is_memory(self) -> bool:
        return bool(self.flags & IORESOURCE_MEM)

    @property
    def prefetchable(self) -> bool:
        return resource_prefetchable(self.index, self.flags)

    @property
    def is_64bit(self) -> bool:
        flags = self.flags
        if flags & IORESOURCE_MEM_64:
            return True
        return self.index in _BAR_LINES and flags & IORESOURCE_MEM != 0 and flags & BAR_TYPE_MASK == BAR_TYPE_64

    def to_dict(self) -> dict[str, object]:
        index, start, end, flags = self
        return {
            "index": index,
            "start": hex(start),
            "size": 0 if start == 0 and end == 0 else end - start + 1,
            "prefetchable": resource_prefetchable(index, flags),
            "is_64bit": self.is_64bit,
        }


_ZERO_LINE = "0x0000000000000000 0x0000000000000000 0x0000000000000000"
#: One shared tuple per line index for unused entries (most of every table).
_UNUSED = tuple(Resource(i, 0, 0, 0) for i in range(32))


def parse_resource(text: str) -> list[Resource]:
    """The `resource` table (13 lines for endpoints, 17 for bridges; older kernels fewer).

    Unparseable lines are skipped rather than fatal: enumeration must survive a garbled file.
    """
    out: list[Resource] = []
    for index, line in enumerate(text.splitlines()):
        if line.startswith(_ZERO_LINE) and index < len(_UNUSED):
            # Unused entry (most of every table): no need to split and parse three numbers.
            out.append(_UNUSED[index])
            continue
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            start, end, flags = (int(p, 16) for p in parts)
        except ValueError:
            continue
        out.append(Resource(index, start, end, flags))
    return out


def parse_aer_counters(text: str) -> dict[str, int]:
    """aer_dev_correctable / _nonfatal / _fatal -> {name: count}.

    The names changed across kernels ("Receiver Error" vs "RxErr") and unnamed bits print as
    "dev_cor_errs_bit[N]", so never rely on the name set: the last token is the count and the
    rest of the line is the name. The TOTAL_ERR_* line is kept under its own name.
    """
    counters: dict[str, int] = {}
    for line in text.splitlines():
        name, _, count = line.rstrip().rpartition(" ")
        if not name:
            continue
        try:
            counters[name.strip()] = int(count)  # what parse_int does, without the call
        except ValueError:
            continue
    return counters


def aer_total(counters: dict[str, int]) -> int:
    """The TOTAL_ERR_* line when present, else the sum of the named counts."""
    for name, value in counters.items():
        if name.startswith("TOTAL_ERR_"):
            return value
    return sum(counters.values())


_SERIAL = re.compile(r"^[0-9a-f]{2}(?:-[0-9a-f]{2}){7}$")


def parse_serial(text: str) -> str | None:
    """serial_number (``%8phD``: 8 dash-separated bytes, big-endian) -> canonical lowercase form."""
    t = text.strip().lower()
    return t if _SERIAL.match(t) else None


def format_serial(value: int) -> str:
    """A 64-bit DSN as sysfs and lspci print it: ``xx-xx-xx-xx-xx-xx-xx-xx``, most significant first."""
    return value.to_bytes(8, "big").hex("-")


def parse_slot_address(text: str) -> tuple[int, int, int | None] | None:
    """bus/pci/slots/N/address: ``dddd:bb:dd`` or ``dddd:bb`` (placeholder slot) -> (dom, bus, dev)."""
    parts = text.strip().split(":")
    try:
        if len(parts) == 3:
            return int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)
        if len(parts) == 2:
            return int(parts[0], 16), int(parts[1], 16), None
    except ValueError:
        return None
    return None

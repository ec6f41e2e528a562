"""Vendor and device names from pci.ids (Debian's /usr/share/misc/pci.ids or hwdata's).

Loaded once per process and searched lazily per vendor: parsing the whole 1.3 MB file would
cost more than the rest of a scan, and a topology only ever names a handful of vendors.
"""

from __future__ import annotations

import os
import re

#: The start of a line that is neither a device line (tab) nor a comment: a new vendor block.
_BLOCK_END = re.compile(rb"\n[^\t#\n]")

#: Where distributions install pci.ids; $ACCELCTL_PCI_IDS overrides (tests pin a known file).
PCI_IDS_PATHS = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
)
PCI_IDS_ENV = "ACCELCTL_PCI_IDS"


class PciIds:
    """Lookups in a pci.ids file: vendor lines at column 0, device lines after one tab."""

    _cache: dict[str, PciIds | None] = {}

    def __init__(self, data: bytes) -> None:
        self._data = data
        #: vendor -> (name, start and end of its block of device lines), found on first use
        self._vendors: dict[int, tuple[str | None, int, int]] = {}
        self._devices: dict[tuple[int, int], str | None] = {}

    @classmethod
    def load(cls) -> PciIds | None:
        """The first readable pci.ids, or None when there is none (names stay unknown)."""
        env = os.environ.get(PCI_IDS_ENV)
        candidates = (env,) if env else PCI_IDS_PATHS
        for path in candidates:
            if path in cls._cache:
                return cls._cache[path]
            try:
                with open(path, "rb") as f:
                    ids: PciIds | None = cls(f.read())
            except OSError:
                continue
            cls._cache[path] = ids
            return ids
        return None

    def _vendor_block(self, vendor: int) -> tuple[str | None, int, int]:
        """The vendor's name and the byte range of its device lines (found with bytes.find:
        big vendors have tens of thousands of device and subsystem lines, never all needed)."""
        if vendor in self._vendors:
            return self._vendors[vendor]
        data = self._data
        key = b"\n%04x  " % vendor
        start = data.find(key)
        if start < 0:
            block: tuple[str | None, int, int] = (None, 0, 0)
        else:
            line_end = data.find(b"\n", start + 1)
            if line_end < 0:
                line_end = len(data)
            name = data[start + len(key) : line_end].decode("utf-8", "replace").strip()
            # The block ends at the next line that does not start with a tab or a comment: the
            # next vendor (hex at column 0) or the device-class section ("C xx").
            end = _BLOCK_END.search(data, line_end)
            block = (name, line_end, end.start() if end else len(data))
        self._vendors[vendor] = block
        return block

    def vendor(self, vendor: int) -> str | None:
        return self._vendor_block(vendor)[0]

    def device(self, vendor: int, device: int) -> str | None:
        key = (vendor, device)
        if key in self._devices:
            return self._devices[key]
        _, start, end = self._vendor_block(vendor)
        name: str | None = None
        at = self._data.find(b"\n\t%04x  " % device, start, end) if end > start else -1
        if at >= 0:
            line_end = self._data.find(b"\n", at + 1, end + 1)
            if line_end < 0:
                line_end = end
            name = self._data[at + 7 : line_end].decode("utf-8", "replace").strip() or None
        self._devices[key] = name
        return name

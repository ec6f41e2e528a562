"""Vendor and device names from pci.ids (Debian's /usr/share/misc/pci.ids or hwdata's).

Loaded once per process and searched lazily per vendor: parsing the whole 1.3 MB file would
cost more than the rest of a scan, and a topology only ever names a handful of vendors.
"""

from __future__ import annotations

import os

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
        self._vendors: dict[int, tuple[str | None, dict[int, str]]] = {}

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

    def _vendor_block(self, vendor: int) -> tuple[str | None, dict[int, str]]:
        if vendor in self._vendors:
            return self._vendors[vendor]
        key = f"\n{vendor:04x}  ".encode()
        start = self._data.find(key)
        name: str | None = None
        devices: dict[int, str] = {}
        if start >= 0:
            line_end = self._data.find(b"\n", start + 1)
            name = self._data[start + len(key) : line_end].decode("utf-8", "replace").strip()
            pos = line_end + 1
            while pos < len(self._data):
                end = self._data.find(b"\n", pos)
                if end < 0:
                    end = len(self._data)
                line = self._data[pos:end]
                pos = end + 1
                if not line or line.startswith(b"#"):
                    continue
                if not line.startswith(b"\t"):
                    break  # next vendor (or the class section)
                if line.startswith(b"\t\t"):
                    continue  # subsystem line
                dev_hex, _, dev_name = line[1:].partition(b"  ")
                try:
                    devices[int(dev_hex, 16)] = dev_name.decode("utf-8", "replace").strip()
                except ValueError:
                    continue
        self._vendors[vendor] = (name, devices)
        return name, devices

    def vendor(self, vendor: int) -> str | None:
        return self._vendor_block(vendor)[0]

    def device(self, vendor: int, device: int) -> str | None:
        return self._vendor_block(vendor)[1].get(device)

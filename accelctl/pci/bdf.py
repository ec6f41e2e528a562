"""PCI function addresses (domain:bus:device.function)."""

from __future__ import annotations

import re
from typing import NamedTuple

from accelctl.errors import InvalidAddressError

# Domains have 4 or more hex digits (VMD uses 10000+); bus 2, device 2 (0..1f), function 1 (0..7).
_LONG = re.compile(r"^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
_SHORT = re.compile(r"^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
#: A sysfs device directory name: strictly the kernel's "%04x:%02x:%02x.%d" form, lowercase.
SYSFS_NAME = re.compile(r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
#: A host bridge (root bus) directory name: "pci%04x:%02x".
HOST_BRIDGE_NAME = re.compile(r"^pci([0-9a-f]{4,}):([0-9a-f]{2})$")


class Bdf(NamedTuple):
    """A PCI function address; ordered by (domain, bus, device, function).

    A NamedTuple: immutable, hashable, and compared and sorted in C (a large machine sorts
    thousands of these several times per run).
    """

    domain: int
    bus: int
    device: int
    function: int

    @classmethod
    def parse(cls, text: str, *, default_domain: int = 0) -> Bdf:
        """Parse ``dddd:bb:dd.f`` or the short ``bb:dd.f`` form.

        Raises:
            InvalidAddressError: the text is not a BDF, or a field is out of range.
        """
        t = text.strip()
        m = _LONG.match(t)
        if m:
            dom, bus, dev, fn = (int(g, 16) for g in m.groups())
        else:
            m = _SHORT.match(t)
            if not m:
                raise InvalidAddressError(text, "expected dddd:bb:dd.f or bb:dd.f")
            dom = default_domain
            bus, dev, fn = (int(g, 16) for g in m.groups())
        if dev > 0x1F:
            raise InvalidAddressError(text, "device number above 1f")
        return cls(dom, bus, dev, fn)

    @classmethod
    def from_sysfs_name(cls, name: str) -> Bdf:
        """A kernel device directory name (already matched by SYSFS_NAME): no regex, no checks
        beyond int(); a scan makes thousands of these."""
        dom, bus, devfn = name.split(":")
        dev, fn = devfn.split(".")
        return cls(int(dom, 16), int(bus, 16), int(dev, 16), int(fn))

    @classmethod
    def find(cls, text: str) -> Bdf | None:
        """Parse, or None when the text is not a BDF."""
        try:
            return cls.parse(text)
        except InvalidAddressError:
            return None

    @property
    def devfn(self) -> int:
        return (self.device << 3) | self.function

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.device:02x}.{self.function:x}"


def host_bridge_id(domain: int, bus: int) -> str:
    """The id of a host bridge node: the kernel's directory name, ``pciDDDD:BB``."""
    return f"pci{domain:04x}:{bus:02x}"

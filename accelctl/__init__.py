"""accelctl: find, check, address, reset and talk to ML accelerator cards on PCIe.

Importing the package is cheap on purpose (the CLI is called in loops by scripts): the public
names below are loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SysfsRoot": "accelctl.sysfs",
    "build_topology": "accelctl.topology",
    "Topology": "accelctl.topology",
    "NodeKind": "accelctl.topology",
    "Bdf": "accelctl.pci.bdf",
    "AccelError": "accelctl.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'accelctl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

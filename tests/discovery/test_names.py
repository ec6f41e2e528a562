"""Vendor and device names from pci.ids: a hand-written file, and lspci reading the real one."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from accelctl.pci.names import PciIds
from accelctl.sim.fixture import bundled_fixture_root
from accelctl.topology import build_topology
from tests.conftest import requires_lspci

IDS = b"""#
#\tList of PCI ID's (a hand-written excerpt)
#
0abc  First Vendor
\t0001  Widget One
\t\t0abc 0001  Widget One (subsystem line, not a device)
# a comment inside a vendor block
\t0002  Widget Two
\t1000  Widget Four-Digit
10de  NVIDIA Corporation
\t20b0  GA100 [A100 SXM4 40GB]
\t\t10de 134f  A100 subsystem
ffff  Illegal Vendor ID
C 00  Unclassified device
\t00  Non-VGA unclassified device
"""


@pytest.fixture()
def ids() -> PciIds:
    return PciIds(IDS)


def test_vendor_and_device_lookups(ids):
    assert ids.vendor(0x0ABC) == "First Vendor"
    assert ids.device(0x0ABC, 0x0001) == "Widget One"
    assert ids.device(0x0ABC, 0x0002) == "Widget Two"  # past a comment inside the block
    assert ids.device(0x0ABC, 0x1000) == "Widget Four-Digit"
    assert ids.device(0x10DE, 0x20B0) == "GA100 [A100 SXM4 40GB]"


def test_lookups_stay_inside_their_vendor_block(ids):
    assert ids.device(0x0ABC, 0x20B0) is None  # another vendor's device
    assert ids.device(0x10DE, 0x0ABC) is None  # a subsystem line is not a device line
    assert ids.device(0xFFFF, 0x0000) is None  # the class section is not a device list
    assert ids.vendor(0x1234) is None and ids.device(0x1234, 0x0001) is None


@requires_lspci
@pytest.mark.parametrize("name", ["two-socket", "flat-vmd", "scale"])
def test_names_agree_with_lspci_on_the_same_pci_ids(name, monkeypatch):
    pci_ids = Path("/usr/share/misc/pci.ids")
    if not pci_ids.exists():
        pytest.skip("no pci.ids installed")
    monkeypatch.setenv("ACCELCTL_PCI_IDS", str(pci_ids))
    PciIds._cache.clear()
    tree = bundled_fixture_root(name)
    out = subprocess.run(
        ["lspci", "-mm", "-D", "-A", "linux-sysfs", "-O", f"sysfs.path={tree}/bus/pci",
         "-O", "hwdb.disable=1", "-i", str(pci_ids)],
        capture_output=True, text=True, check=True,
    ).stdout
    topo = build_topology(tree)
    named = 0
    for line in out.splitlines():
        bdf, _cls, vendor, device, *_ = shlex.split(line)
        fn = topo.functions[bdf]
        # lspci prints "Vendor xxxx" / "Device xxxx" for ids pci.ids does not know.
        assert fn.vendor_name == (None if vendor.startswith("Vendor ") else vendor), bdf
        assert fn.device_name == (None if device.startswith("Device ") else device), bdf
        named += fn.device_name is not None
    assert named > 0  # the fixture has known devices, so the comparison is not vacuous

"""The live /sys of the machine running the tests: parses cleanly and agrees with lspci."""

from __future__ import annotations

import os
import subprocess

import pytest

from accelctl.topology import build_topology
from tests.conftest import requires_lspci

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.path.isdir("/sys/bus/pci/devices"), reason="no PCI sysfs here"),
]

#: Warning codes that describe the machine (a dead device, a racing unplug, not being root);
#: any other warning on a live tree means we misread something.
MACHINE_FACT_CODES = {"CONFIG_LIMITED", "CONFIG_ALL_ONES", "BROKEN_LINK", "DEVICE_VANISHED"}


def test_live_tree_parses_without_warnings_about_our_bugs():
    topo = build_topology("/sys")
    assert topo.functions
    ours = [w for w in topo.warnings if w.code not in MACHINE_FACT_CODES]
    assert ours == []


@requires_lspci
def test_live_devices_and_ids_match_lspci():
    topo = build_topology("/sys")
    out = subprocess.run(
        ["lspci", "-D", "-n", "-mm"], capture_output=True, text=True, check=True
    ).stdout
    expected = {}
    for line in out.splitlines():
        # 0000:00:01.0 "00ff" "1af4" "1045" -r01 "1af4" "1045"
        parts = line.split('"')
        bdf = parts[0].strip()
        expected[bdf] = (parts[1], parts[3], parts[5])
    got = {
        fn.id: (f"{fn.class_code >> 8:04x}", f"{fn.vendor_id:04x}", f"{fn.device_id:04x}")
        for fn in topo.functions.values()
    }
    assert got == expected


@pytest.mark.skipif(
    os.path.exists("/run/udev") or os.geteuid() != 0,
    reason="needs root and no real udev database (the test writes a throwaway one)",
)
def test_live_names_come_from_the_udev_database_first(tmp_path, monkeypatch):
    """A udev database entry (what systemd-udevd writes from hwdb) names a live device through
    the real libudev, ahead of pci.ids; a device udev does not name keeps its pci.ids name."""
    import shutil

    monkeypatch.setenv("ACCELCTL_PCI_IDS", str(tmp_path / "empty.ids"))
    (tmp_path / "empty.ids").write_text("")
    from accelctl.pci.names import PciIds

    PciIds._cache.clear()
    first = sorted(os.listdir("/sys/bus/pci/devices"))[0]
    data = "/run/udev/data"
    os.makedirs(data)
    try:
        with open(f"{data}/+pci:{first}", "w") as f:
            f.write("I:1\nE:ID_VENDOR_FROM_DATABASE=Udev Vendor Name\nE:ID_MODEL_FROM_DATABASE=Udev Model 42\n")
        topo = build_topology("/sys")
    finally:
        shutil.rmtree("/run/udev")
        PciIds._cache.clear()
    fn = topo.functions[first]
    assert (fn.vendor_name, fn.device_name) == ("Udev Vendor Name", "Udev Model 42")
    others = [f for f in topo.functions.values() if f.id != first]
    assert all(f.device_name is None for f in others)  # empty pci.ids, no udev entry

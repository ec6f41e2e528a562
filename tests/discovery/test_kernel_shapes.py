"""One small tree per defect class of issue 10, written by hand from how real kernels and
devices leave sysfs (not by our fixture builder, which shares our assumptions).

Values are the ones seen on real machines where there is one to copy: the old kernel's resource
flags of a Xeon Phi and its root port, an ICH10 subtractive-decode bridge, an ASPEED AST1150
PCIe-to-PCI bridge with the BMC's VGA below it, portdrv's service children of both naming eras.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from accelctl.diagnostics import run_diagnostics
from accelctl.topology import NodeKind, build_topology
from tests.discovery.minitree import MiniTree, config_bytes

ZERO = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"


def resource(lines: dict[int, tuple[int, int, int]], n: int = 13) -> str:
    """A `resource` file: `n` lines (13 endpoint, 18 bridge on these kernels), the given
    index -> (start, end, flags), zeros elsewhere."""
    return "".join(
        f"0x{lines[i][0]:016x} 0x{lines[i][1]:016x} 0x{lines[i][2]:016x}\n" if i in lines else ZERO
        for i in range(n)
    )


def short(vendor: int, device: int, cls: int, *, bridge=None, bars: dict[int, int] | None = None) -> bytes:
    """64 bytes of config, as a non-root reader gets them: header (and BAR registers), with the
    status register saying a capability list exists that the reader cannot see."""
    b = bytearray(config_bytes(vendor, device, cls, bridge=bridge, pcie_type=0)[:64])
    for index, value in (bars or {}).items():
        struct.pack_into("<I", b, 0x10 + 4 * index, value)
    return bytes(b)


def port_config(vendor: int, device: int, bus: tuple[int, int, int], *, pcie_type: int = 4,
                width: int = 0, slot_present: bool | None = None) -> bytes:
    """Full config of a PCIe port: Express capability at 0x40 with the link status `width`
    (0 = no link) and, when `slot_present` is not None, an implemented slot whose Presence
    Detect State says so."""
    b = bytearray(config_bytes(vendor, device, 0x060400, bridge=bus, pcie_type=pcie_type))
    flags = (pcie_type << 4) | 2 | (0x100 if slot_present is not None else 0)
    struct.pack_into("<H", b, 0x42, flags)
    struct.pack_into("<H", b, 0x52, (width << 4) | (3 if width else 1))
    if slot_present is not None:
        struct.pack_into("<I", b, 0x54, 6 << 19)  # SLTCAP: physical slot 6
        struct.pack_into("<H", b, 0x5A, 0x40 if slot_present else 0)
    return bytes(b)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "accelctl", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "250", **(env or {})})


def codes(report) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(f.code, f.severity.value, f.subject) for f in report.findings if f.code != "LIMITED_VISIBILITY"]


# --- resource flags of every kernel era -------------------------------------------------------

RP = "pci0000:00/0000:00:03.0"
PHI = f"{RP}/0000:02:00.0"


def _phi_machine(tmp_path: Path, bar0_start: int) -> MiniTree:
    """A Xeon Phi below an X58 root port, read as non-root on a kernel of 2013: flags in the old
    layout (PREFETCH 0x1000, SIZEALIGN 0x20000), exactly as that machine's files have them."""
    tree = MiniTree(tmp_path)
    tree.add(RP, 0x8086, 0x340A, 0x060400, bridge=(0, 2, 2), driver="pcieport", services=("01", "02"),
             config=short(0x8086, 0x340A, 0x060400, bridge=(0, 2, 2)),
             attrs={"resource": resource({14: (0xB1B00000, 0xB1BFFFFF, 0x200),
                                          15: (0xEA00000000, 0xEBFFFFFFFF, 0x101201)}, n=18)})
    tree.add(PHI, 0x8086, 0x225C, 0x0B4000, driver="mic",
             config=short(0x8086, 0x225C, 0x0B4000, bars={0: (bar0_start & 0xFFFFFFFF) | 0xC, 1: bar0_start >> 32,
                                                         4: 0xB1B00004}),
             attrs={"resource": resource({0: (bar0_start, bar0_start + (8 << 30) - 1, 0x12120C),
                                          4: (0xB1B00000, 0xB1B1FFFF, 0x120204)})})
    return tree


def test_old_kernel_prefetchable_bar_inside_the_prefetchable_window_is_healthy(tmp_path):
    _phi_machine(tmp_path, 0xEA00000000)
    topo = build_topology(tmp_path, names=False)
    bar0 = topo.functions["0000:02:00.0"].bars[0]
    assert bar0.prefetchable and bar0.is_64bit
    report = run_diagnostics(topo)
    assert codes(report) == [] and not report.failed


def test_old_kernel_bar_outside_every_window_is_still_found(tmp_path):
    _phi_machine(tmp_path, 0xEC00000000)
    report = run_diagnostics(build_topology(tmp_path, names=False))
    assert codes(report) == [("BAR_UNASSIGNED", "error", "0000:00:03.0")]
    assert "0000:02:00.0 BAR0 (8 GiB at 0xec00000000)" in report.findings[-1].message


def test_an_io_bar_is_never_counted_into_a_memory_window(tmp_path):
    """Only a 64-bit prefetchable BAR lies outside its window; the I/O BAR beside it belongs to
    I/O space, so the hint must not ask for any 32-bit memory window."""
    tree = MiniTree(tmp_path)
    tree.add("pci0000:00/0000:00:01.0", 0x8086, 0x2030, 0x060400, bridge=(0, 1, 1), pcie_type=4,
             attrs={"resource": resource({13: (0x1000, 0x1FFF, 0x100),
                                          15: (0x4000000000, 0x40FFFFFFFF, 0x102201)}, n=17)})
    tree.add("pci0000:00/0000:00:01.0/0000:01:00.0", 0x10DE, 0x20B0, 0x030200, pcie_type=0,
             attrs={"resource": resource({0: (0x1000, 0x10FF, 0x40101),
                                          2: (0x5000000000, 0x53FFFFFFFF, 0x14220C)})})
    report = run_diagnostics(build_topology(tmp_path, names=False))
    (finding,) = [f for f in report.findings if f.code == "BAR_UNASSIGNED"]
    assert "BAR0" not in finding.message and "BAR2" in finding.message
    assert "32-bit window of nothing" in finding.hint
    assert "BAR0" not in finding.hint


# --- bus numbers and hot-plug --------------------------------------------------------------------


def _chipset_port(tmp_path: Path, slot_present: bool | None) -> MiniTree:
    tree = MiniTree(tmp_path)
    tree.add("pci0000:00/0000:00:1c.6", 0x8086, 0x3A4C, 0x060400, bridge=(0, 0, 0), driver="pcieport",
             config=port_config(0x8086, 0x3A4C, (0, 0, 0), slot_present=slot_present))
    tree.add("pci0000:00/0000:00:1f.0", 0x8086, 0x3A16, 0x060100)
    return tree


def test_an_unused_virtual_root_port_without_bus_numbers_is_not_a_fault(tmp_path):
    """A chipset root port with secondary = subordinate = 0, no link, nothing behind it and no
    slot saying a card is present: nothing in the data says buses ran out."""
    _chipset_port(tmp_path, slot_present=None)
    report = run_diagnostics(build_topology(tmp_path, names=False))
    assert [f for f in report.findings if f.code == "BUS_NUMBERS_EXHAUSTED"] == []
    assert not report.failed


def test_a_port_without_bus_numbers_whose_slot_holds_a_card_is_a_fault(tmp_path):
    _chipset_port(tmp_path, slot_present=True)
    report = run_diagnostics(build_topology(tmp_path, names=False))
    (finding,) = [f for f in report.findings if f.code == "BUS_NUMBERS_EXHAUSTED"]
    assert finding.subject == "0000:00:1c.6" and "slot reports a card present" in finding.message
    # the hint states what the tree shows, not a story about how it happened
    assert "hot-plug)" not in finding.hint and "added after boot" not in finding.hint


# --- kinds from 64 bytes of config ---------------------------------------------------------------


def test_subtractive_decode_bridge_is_a_pci_bridge(tmp_path):
    tree = MiniTree(tmp_path)
    tree.add("pci0000:00/0000:00:1c.0", 0x8086, 0x3A40, 0x060400, bridge=(0, 4, 4), driver="pcieport",
             services=("01", "02", "04"), config=short(0x8086, 0x3A40, 0x060400, bridge=(0, 4, 4)))
    tree.add("pci0000:00/0000:00:1e.0", 0x8086, 0x244E, 0x060401, bridge=(0, 7, 7),
             config=short(0x8086, 0x244E, 0x060401, bridge=(0, 7, 7)))
    tree.add("pci0000:00/0000:00:1e.0/0000:07:01.0", 0x104C, 0x8023, 0x0C0010, driver="firewire_ohci",
             config=short(0x104C, 0x8023, 0x0C0010))
    fns = build_topology(tmp_path, names=False).functions
    assert fns["0000:00:1c.0"].kind is NodeKind.ROOT_PORT
    assert fns["0000:00:1e.0"].kind is NodeKind.PCI_BRIDGE
    assert fns["0000:07:01.0"].kind is NodeKind.PCI_ENDPOINT


def test_aspeed_pcie_to_pci_bridge_with_the_bmc_vga_below_is_not_a_switch(tmp_path):
    """pcieport drives every root and switch port; the AST1150 bridge it does not drive, with an
    endpoint (not downstream ports) below it, is a PCIe-to-PCI bridge, and the VGA below it a
    conventional PCI function (and never an accelerator)."""
    tree = MiniTree(tmp_path)
    rp = "pci0000:00/0000:00:1c.5"
    tree.add(rp, 0x8086, 0xA195, 0x060400, bridge=(0, 5, 6), driver="pcieport", services=("001", "002", "010"),
             config=short(0x8086, 0xA195, 0x060400, bridge=(0, 5, 6)))
    tree.add(f"{rp}/0000:05:00.0", 0x1A03, 0x1150, 0x060400, bridge=(5, 6, 6),
             config=short(0x1A03, 0x1150, 0x060400, bridge=(5, 6, 6)))
    tree.add(f"{rp}/0000:05:00.0/0000:06:00.0", 0x1A03, 0x2000, 0x030000, driver="ast",
             config=short(0x1A03, 0x2000, 0x030000))
    topo = build_topology(tmp_path, names=False)
    fns = topo.functions
    assert fns["0000:05:00.0"].kind is NodeKind.PCI_BRIDGE
    assert fns["0000:06:00.0"].kind is NodeKind.PCI_ENDPOINT
    assert topo.switches == [] and topo.cards == []


def test_port_types_from_portdrv_service_children_of_both_naming_eras(tmp_path):
    """``pcieNNN`` is ((type - 4) << 8) | service today, ``pcieNN`` ((type - 4) << 4) | service on
    older kernels: 0 a root port, 1 an upstream port, 2 a downstream port."""
    tree = MiniTree(tmp_path)
    rp = "pci0000:00/0000:00:02.0"
    up = f"{rp}/0000:01:00.0"
    tree.add(rp, 0x8086, 0x2F04, 0x060400, bridge=(0, 1, 4), driver="pcieport", services=("001", "002"),
             config=short(0x8086, 0x2F04, 0x060400, bridge=(0, 1, 4)))
    tree.add(up, 0x10B5, 0x9797, 0x060400, bridge=(1, 2, 4), driver="pcieport",
             config=short(0x10B5, 0x9797, 0x060400, bridge=(1, 2, 4)))
    tree.add(f"{up}/0000:02:04.0", 0x10B5, 0x9797, 0x060400, bridge=(2, 3, 3), driver="pcieport",
             services=("210",), config=short(0x10B5, 0x9797, 0x060400, bridge=(2, 3, 3)))
    tree.add(f"{up}/0000:02:08.0", 0x10B5, 0x9797, 0x060400, bridge=(2, 4, 4), driver="pcieport",
             services=("24",), config=short(0x10B5, 0x9797, 0x060400, bridge=(2, 4, 4)))
    tree.add(f"{up}/0000:02:04.0/0000:03:00.0", 0x1BCF, 0x001C, 0x0B4000, config=short(0x1BCF, 0x001C, 0x0B4000))
    tree.add(f"{up}/0000:02:08.0/0000:04:00.0", 0x1BCF, 0x001C, 0x0B4000, config=short(0x1BCF, 0x001C, 0x0B4000))
    topo = build_topology(tmp_path, names=False)
    kinds = {i: f.kind for i, f in topo.functions.items()}
    assert kinds == {
        "0000:00:02.0": NodeKind.ROOT_PORT, "0000:01:00.0": NodeKind.SWITCH_UPSTREAM,
        "0000:02:04.0": NodeKind.SWITCH_DOWNSTREAM, "0000:02:08.0": NodeKind.SWITCH_DOWNSTREAM,
        "0000:03:00.0": NodeKind.ENDPOINT, "0000:04:00.0": NodeKind.ENDPOINT,
    }
    assert [(s.upstream, s.downstream) for s in topo.switches] == [("0000:01:00.0", ["0000:02:04.0", "0000:02:08.0"])]
    assert len(topo.cards) == 2  # NEC Vector Engines: co-processors


# --- trees as the kernel left them: functions bus/pci/devices does not list --------------------


def _partial_switch(tmp_path: Path) -> MiniTree:
    tree = MiniTree(tmp_path)
    rp = "pci0000:00/0000:00:01.0"
    up = f"{rp}/0000:01:00.0"
    tree.add(rp, 0x8086, 0x2030, 0x060400, bridge=(0, 1, 4), pcie_type=4)
    tree.add(up, 0x10B5, 0x9797, 0x060400, bridge=(1, 2, 4), pcie_type=5)
    tree.add(f"{up}/0000:02:00.0", 0x10B5, 0x9797, 0x060400, bridge=(2, 3, 3), pcie_type=6)
    # present under devices/, missing from bus/pci/devices (a device being removed, a partial copy)
    tree.add(f"{up}/0000:02:01.0", 0x10B5, 0x9797, 0x060400, bridge=(2, 4, 4), pcie_type=6, link="none")
    tree.add(f"{up}/0000:02:00.0/0000:03:00.0", 0x1E52, 0x401E, 0x120000, pcie_type=0)
    tree.add(f"{up}/0000:02:01.0/0000:04:00.0", 0x1E52, 0x401E, 0x120000, pcie_type=0)
    tree.add(f"{up}/0000:02:01.0/0000:04:00.1", 0x1E52, 0x401E, 0x120000, pcie_type=0, link="none")
    return tree


def test_functions_missing_from_bus_pci_devices_are_read_from_the_hierarchy(tmp_path):
    _partial_switch(tmp_path)
    topo = build_topology(tmp_path, names=False)
    assert sorted(topo.functions) == ["0000:00:01.0", "0000:01:00.0", "0000:02:00.0", "0000:02:01.0",
                                      "0000:03:00.0", "0000:04:00.0", "0000:04:00.1"]
    assert topo.functions["0000:04:00.0"].parent == "0000:02:01.0"
    assert topo.functions["0000:02:01.0"].kind is NodeKind.SWITCH_DOWNSTREAM
    assert sorted((w.code, w.subject) for w in topo.warnings) == [
        ("UNLISTED_FUNCTION", "0000:02:01.0"), ("UNLISTED_FUNCTION", "0000:04:00.1")]


def test_what_is_counted_is_what_is_drawn_in_every_format(tmp_path):
    _partial_switch(tmp_path)
    ids = {"0000:00:01.0", "0000:01:00.0", "0000:02:00.0", "0000:02:01.0", "0000:03:00.0",
           "0000:04:00.0", "0000:04:00.1"}
    text = cli("--sysfs-root", str(tmp_path), "topology").stdout
    drawn = re.findall(r"\b0000:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b", text)
    assert sorted(drawn) == sorted(ids) and "(7 functions," in text
    doc = json.loads(cli("--sysfs-root", str(tmp_path), "topology", "--json").stdout)
    node_ids = {n["id"] for n in doc["nodes"]}
    assert node_ids == ids | {"pci0000:00"}
    assert all(n["parent"] is None or n["parent"] in node_ids for n in doc["nodes"])
    for fmt in ("graphml", "dot"):
        out = cli("--sysfs-root", str(tmp_path), "topology", "--format", fmt).stdout
        if fmt == "graphml":
            g = nx.parse_graphml(out)
        else:
            g = nx.DiGraph(re.findall(r'^\s+"([^"]+)" -> "([^"]+)";$', out, re.M))
            g.add_nodes_from(re.findall(r'^\s+"([^"]+)" \[', out, re.M))
        assert set(g.nodes) == ids | {"pci0000:00"}
        assert nx.is_arborescence(g)  # one tree: no detached node, no dangling parent


# --- every string from sysfs or pci.ids reaches the screen as written ---------------------------


def test_brackets_in_bus_ranges_names_and_slots_are_printed_not_eaten(tmp_path):
    """Rich takes '[c2-c2]' and '[iOHCI-Lynx]' for markup: they must reach the terminal."""
    ids = tmp_path / "pci.ids"
    ids.write_text("# pci.ids\n104c  Texas Instruments\n\t8025  FW323 [iOHCI-Lynx]\n1e52  Tenstorrent Inc\n"
                   "\t401e  Wormhole [n300 bold]\n")
    sysfs = tmp_path / "sys"
    tree = MiniTree(sysfs)
    rp = "pci0000:c0/0000:c0:01.0"
    tree.add(rp, 0x8086, 0x2030, 0x060400, bridge=(0xC0, 0xC2, 0xC2), pcie_type=4)
    tree.add(f"{rp}/0000:c2:00.0", 0x1E52, 0x401E, 0x120000, pcie_type=0)
    tree.add("pci0000:c0/0000:c0:1e.0", 0x104C, 0x8025, 0x0C0010)
    slot = sysfs / "bus" / "pci" / "slots" / "[b]RISER"
    slot.mkdir(parents=True)
    (slot / "address").write_text("0000:c2:00\n")
    env = {"ACCELCTL_PCI_IDS": str(ids), "NO_COLOR": "1"}
    text = cli("--sysfs-root", str(sysfs), "topology", env=env).stdout
    assert "[c2-c2]" in text and "FW323 [iOHCI-Lynx]" in text and "Wormhole [n300 bold]" in text
    listing = cli("--sysfs-root", str(sysfs), "list", "--all", env=env).stdout
    assert "FW323 [iOHCI-Lynx]" in listing and "Wormhole [n300 bold]" in listing
    addr = cli("--sysfs-root", str(sysfs), "addr", "show", env=env)
    assert addr.returncode == 0, addr.stderr
    assert "[b]RISER" in addr.stdout

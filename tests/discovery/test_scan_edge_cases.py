"""The scan on tree shapes real machines and copies of them produce."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from accelctl.errors import SysfsRootError
from accelctl.topology import NodeKind, build_topology
from tests.discovery.minitree import MiniTree, config_bytes

RP = "pci0000:00/0000:00:01.0"


def _basic(tree: MiniTree, link: str = "relative") -> None:
    tree.add(RP, 0x8086, 0x1234, 0x060400, bridge=(0, 1, 1), pcie_type=4, link=link)
    tree.add(f"{RP}/0000:01:00.0", 0x1E52, 0x401E, 0x120000, pcie_type=0, link=link)


def test_port_service_children_pci_bus_and_driver_dirs_are_not_devices(tmp_path):
    tree = MiniTree(tmp_path)
    _basic(tree)
    for extra in ("0000:00:01.0:pcie002", "0000:00:01.0:pcie010", "pci_bus/0000:01", "power"):
        (tmp_path / "devices" / RP / extra).mkdir(parents=True)
    (tmp_path / "devices" / RP / "0000:01:00.0" / "net" / "eth0").mkdir(parents=True)
    topo = build_topology(tmp_path)
    assert sorted(topo.functions) == ["0000:00:01.0", "0000:01:00.0"]
    assert topo.functions["0000:01:00.0"].parent == "0000:00:01.0"
    assert topo.functions["0000:00:01.0"].kind is NodeKind.ROOT_PORT
    assert topo.warnings == []


def test_vmd_root_bus_nested_inside_an_endpoint(tmp_path):
    tree = MiniTree(tmp_path)
    tree.add("pci0000:00/0000:00:0e.0", 0x8086, 0x467F, 0x010400, pcie_type=9)
    vmd = "pci0000:00/0000:00:0e.0/pci10000:e0"
    tree.add(f"{vmd}/10000:e0:06.0", 0x8086, 0x464D, 0x060400, bridge=(0xE0, 0xE1, 0xE1), pcie_type=4)
    tree.add(f"{vmd}/10000:e0:06.0/10000:e1:00.0", 0x144D, 0xA80A, 0x010802, pcie_type=0)
    topo = build_topology(tmp_path)
    assert topo.host_bridges["pci10000:e0"].parent == "0000:00:0e.0"
    assert topo.host_bridges["pci10000:e0"].domain == 0x10000
    assert [n.id for n in topo.path("10000:e1:00.0")] == [
        "pci0000:00", "0000:00:0e.0", "pci10000:e0", "10000:e0:06.0", "10000:e1:00.0"]
    assert topo.functions["10000:e1:00.0"].bdf.domain == 0x10000


def test_broken_links_and_stray_entries_warn_and_continue(tmp_path):
    tree = MiniTree(tmp_path)
    _basic(tree)
    devices = tmp_path / "bus" / "pci" / "devices"
    (devices / "0000:05:00.0").symlink_to("../../../devices/pci0000:00/gone/0000:05:00.0")
    (devices / "README").write_text("not a device")
    topo = build_topology(tmp_path)
    assert sorted(topo.functions) == ["0000:00:01.0", "0000:01:00.0"]
    assert sorted(w.code for w in topo.warnings) == ["BROKEN_LINK", "STRAY_ENTRY"]


def test_absolute_links_from_a_copied_tree_are_rerooted(tmp_path):
    tree = MiniTree(tmp_path)
    _basic(tree, link="absolute")
    topo = build_topology(tmp_path)
    assert topo.functions["0000:01:00.0"].parent == "0000:00:01.0"


def test_flat_copy_infers_parents_from_bus_numbers(tmp_path):
    tree = MiniTree(tmp_path)
    _basic(tree, link="copy")
    topo = build_topology(tmp_path)
    assert topo.functions["0000:01:00.0"].parent == "0000:00:01.0"
    assert topo.functions["0000:00:01.0"].parent == "pci0000:00"
    assert [w.code for w in topo.warnings] == ["FLAT_TREE"]


def test_nonroot_64_byte_config_still_gives_kinds_and_cards(tmp_path):
    tree = MiniTree(tmp_path)
    short = lambda v, d, c, **k: config_bytes(v, d, c, pcie_type=0, **k)[:64]  # noqa: E731
    tree.add(RP, 0x8086, 0x1234, 0x060400, config=short(0x8086, 0x1234, 0x060400, bridge=(0, 1, 3)),
             bridge=(0, 1, 3))
    tree.add(f"{RP}/0000:01:00.0", 0x1000, 0xC010, 0x060400,
             config=short(0x1000, 0xC010, 0x060400, bridge=(1, 2, 3)), bridge=(1, 2, 3))
    for dev in (0, 1):
        tree.add(f"{RP}/0000:01:00.0/0000:02:0{dev}.0", 0x1000, 0xC010, 0x060400,
                 config=short(0x1000, 0xC010, 0x060400, bridge=(2, 3 + dev, 3 + dev)),
                 bridge=(2, 3 + dev, 3 + dev))
    tree.add(f"{RP}/0000:01:00.0/0000:02:00.0/0000:03:00.0", 0x1E52, 0x401E, 0x120000,
             config=short(0x1E52, 0x401E, 0x120000), attrs={"max_link_width": "16\n"})
    topo = build_topology(tmp_path)
    kinds = {i: f.kind.value for i, f in topo.functions.items()}
    assert kinds == {
        "0000:00:01.0": "root_port", "0000:01:00.0": "switch_upstream",
        "0000:02:00.0": "switch_downstream", "0000:02:01.0": "switch_downstream",
        "0000:03:00.0": "endpoint"}
    assert [c.endpoints for c in topo.cards] == [["0000:03:00.0"]]
    ep = topo.functions["0000:03:00.0"]
    assert ep.serial is None and "capabilities" in ep.unknown
    assert [w.code for w in topo.warnings] == ["CONFIG_LIMITED"]


def test_unreadable_config_is_unknown_not_fatal(tmp_path):
    tree = MiniTree(tmp_path)
    _basic(tree)
    cfg = tmp_path / "devices" / RP / "0000:01:00.0" / "config"
    cfg.unlink()
    cfg.mkdir()  # read() fails with EISDIR: stands in for EIO/EINVAL on a dead device
    topo = build_topology(tmp_path)
    assert "config" in topo.functions["0000:01:00.0"].unknown


def test_empty_or_foreign_roots_are_clear_errors(tmp_path):
    with pytest.raises(SysfsRootError, match="no PCI devices"):
        build_topology(tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SysfsRootError, match="not a directory"):
        build_topology(f)


def test_a_root_above_the_sys_folder_names_the_tree_below_it(tmp_path):
    """Unpacked copies of /sys (hwloc's, a support bundle's) sit at host/sys: pointing at the
    folder above used to say only 'no PCI devices'."""
    tree = MiniTree(tmp_path / "host" / "sys")
    _basic(tree)
    assert len(build_topology(tmp_path / "host" / "sys").functions) == 2
    for given in (tmp_path, tmp_path / "host"):
        with pytest.raises(SysfsRootError) as err:
            build_topology(given)
        assert err.value.hint == f"a sysfs tree is at {tmp_path / 'host' / 'sys'}: pass --sysfs-root {tmp_path / 'host' / 'sys'}"


def test_listing_order_does_not_change_the_result(tmp_path):
    # tmpfs lists entries in (reverse) creation order; ext4 lists by hash whatever the order, so
    # only on tmpfs do the two trees below really present their directories differently.
    import os
    import tempfile

    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs tmpfs at /dev/shm to vary directory listing order")
    base = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="accelctl-order-"))
    a, b = MiniTree(base / "a"), MiniTree(base / "b")
    devs = [(f"{RP}/0000:01:00.0/0000:02:0{d}.0", d) for d in range(4)]
    for tree, order in ((a, devs), (b, list(reversed(devs)))):
        tree.add(RP, 0x8086, 0x1234, 0x060400, bridge=(0, 1, 6), pcie_type=4)
        tree.add(f"{RP}/0000:01:00.0", 0x1000, 0xC010, 0x060400, bridge=(1, 2, 6), pcie_type=5)
        for rel, d in order:
            tree.add(rel, 0x1E52, 0x401E, 0x120000, pcie_type=0)
    order = lambda t: os.listdir(t.root / "devices/pci0000:00/0000:00:01.0/0000:01:00.0")  # noqa: E731
    assert order(a) != order(b), "precondition: the two trees list their devices differently"
    ta, tb = build_topology(a.root), build_topology(b.root)
    da, db = ta.to_dict(), tb.to_dict()
    da.pop("sysfs_root"), db.pop("sysfs_root")
    import shutil

    shutil.rmtree(base)
    assert da == db


def test_vf_reading_ffff_ids_in_config_is_alive_and_named_by_sysfs(tmp_path):
    """Real SR-IOV VFs answer ffff for vendor/device in config space; sysfs has the real ids."""
    tree = MiniTree(tmp_path)
    _basic(tree)
    vf_cfg = bytearray(config_bytes(0x1E52, 0x401F, 0x120000, pcie_type=0))
    vf_cfg[0:4] = b"\xff\xff\xff\xff"
    vf = tree.add(f"{RP}/0000:01:00.1", 0x1E52, 0x401F, 0x120000, config=bytes(vf_cfg))
    (vf / "physfn").symlink_to("../0000:01:00.0")
    topo = build_topology(tmp_path)
    fn = topo.functions["0000:01:00.1"]
    assert fn.kind is NodeKind.VIRTUAL_FUNCTION and fn.accessible
    assert (fn.vendor_id, fn.device_id) == (0x1E52, 0x401F)
    assert fn.physfn == "0000:01:00.0" and topo.warnings == []


def _sriov_pf_and_vf(tree: MiniTree, vf_device_id: int) -> Path:
    """A PF whose SR-IOV capability names `vf_device_id`, and one VF reading ffff ids."""
    tree.add(RP, 0x8086, 0x1234, 0x060400, bridge=(0, 1, 1), pcie_type=4)
    pf_cfg = bytearray(config_bytes(0x1E52, 0x401E, 0x120000, pcie_type=0, size=4096))
    struct.pack_into("<I", pf_cfg, 0x100, 0x0010 | (1 << 16))  # SR-IOV, version 1, last
    struct.pack_into("<H", pf_cfg, 0x100 + 0x1A, vf_device_id)  # VF Device ID
    tree.add(f"{RP}/0000:01:00.0", 0x1E52, 0x401E, 0x120000, config=bytes(pf_cfg))
    vf_cfg = bytearray(config_bytes(0x1E52, vf_device_id, 0x120000, pcie_type=0))
    vf_cfg[0:4] = b"\xff\xff\xff\xff"
    vf = tree.add(f"{RP}/0000:01:00.1", 0x1E52, vf_device_id, 0x120000, config=bytes(vf_cfg))
    (vf / "physfn").symlink_to("../0000:01:00.0")
    return vf


def test_vf_ids_come_from_the_pf_sriov_capability_like_the_kernel_gives_them(tmp_path):
    """The kernel gives a VF the PF's vendor and the SR-IOV VF Device ID; with those in the
    PF's config, the VF's own vendor/device files are not needed (thousands of VFs)."""
    vf = _sriov_pf_and_vf(MiniTree(tmp_path), 0x4FF1)
    (vf / "vendor").unlink()
    (vf / "device").unlink()
    fn = build_topology(tmp_path).functions["0000:01:00.1"]
    assert (fn.vendor_id, fn.device_id) == (0x1E52, 0x4FF1)
    assert fn.kind is NodeKind.VIRTUAL_FUNCTION and fn.accessible


def test_cross_check_reads_the_vf_id_files_and_prefers_them(tmp_path):
    """An audit reads what the kernel cached too; those files win over the derivation."""
    vf = _sriov_pf_and_vf(MiniTree(tmp_path), 0x4FF1)
    (vf / "device").write_text("0x4ff2\n")
    assert build_topology(tmp_path).functions["0000:01:00.1"].device_id == 0x4FF1
    assert build_topology(tmp_path, cross_check=True).functions["0000:01:00.1"].device_id == 0x4FF2


def test_dead_device_is_told_from_a_vf_by_its_class_not_its_ids(tmp_path):
    """All ones everywhere (fell off the bus) reads sysfs for everything; ffff ids alone do not."""
    tree = MiniTree(tmp_path)
    _basic(tree)
    tree.add(f"{RP}/0000:01:00.2", 0x1E52, 0x401E, 0x120000, config=b"\xff" * 256,
             attrs={"current_link_speed": "16.0 GT/s PCIe\n"})
    fn = build_topology(tmp_path).functions["0000:01:00.2"]
    assert not fn.accessible
    assert (fn.vendor_id, fn.device_id, fn.class_code) == (0x1E52, 0x401E, 0x120000)

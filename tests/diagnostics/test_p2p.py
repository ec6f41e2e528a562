"""PCIe peer-to-peer is true, false or unknown, with the reason (issue 10, item 8).

Each rule gets a small tree written by hand (tests/discovery/minitree.py, not our fixture
builder): ACS bits on the ports where the paths meet, Linux p2pdma's root-complex rules (its
allow-list, one host bridge or two, the AMD Zen CPU rule), and what stays unknown when ACS or the
CPU cannot be read. Expected values come from the kernel's rules (drivers/pci/p2pdma.c) applied by
hand to each tree; verdicts are read from `accelctl topology matrix --json`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from typer.testing import CliRunner

from accelctl.cli.app import app
from accelctl.diagnostics.matrix import topology_matrix
from accelctl.topology import build_topology
from tests.discovery.minitree import MiniTree, config_bytes

ACCEL = 0x120000
RR_CR = 0x04 | 0x08
INTEL_CPU = "cpu:type:x86,ven0000fam0006mod0055:feature:,0000,0001\n"
ZEN4_CPU = "cpu:type:x86,ven0002fam0019mod0011:feature:,0000,0001\n"
OLD_AMD_CPU = "cpu:type:x86,ven0002fam0015mod0002:feature:,0000\n"


def full_config(vendor: int, device: int, cls: int, *, pcie_type: int, bridge=None,
                acs_ctrl: int | None = None) -> bytes:
    """4 KiB of config as root reads it: the Express capability, and an ACS extended
    capability with control bits `acs_ctrl` when given (else no extended capability)."""
    b = bytearray(config_bytes(vendor, device, cls, bridge=bridge, pcie_type=pcie_type, size=4096))
    if acs_ctrl is not None:
        struct.pack_into("<IHH", b, 0x100, 0x000D | (1 << 16), 0x1F, acs_ctrl)
    return bytes(b)


class Machine:
    def __init__(self, root: Path, cpu_modalias: str | None = INTEL_CPU) -> None:
        self.root = root
        self.tree = MiniTree(root)
        if cpu_modalias is not None:
            cpu = root / "devices" / "system" / "cpu"
            cpu.mkdir(parents=True)
            (cpu / "modalias").write_text(cpu_modalias)

    def host(self, hb: str, ids: tuple[int, int] | None) -> None:
        """Device 00.0 of root bus `hb` (``pci0000:00``) with `ids`, the function p2pdma
        identifies the root complex by; None: no 00.0 (the first root port stands for it)."""
        if ids is not None:
            bus = hb[-2:]
            self.tree.add(f"{hb}/0000:{bus}:00.0", *ids, 0x060000,
                          config=full_config(*ids, 0x060000, pcie_type=9))

    def port(self, rel: str, ids: tuple[int, int], pcie_type: int, buses: tuple[int, int, int], *,
             acs_ctrl: int | None = None, limited: bool = False) -> None:
        cfg = full_config(*ids, 0x060400, pcie_type=pcie_type, bridge=buses, acs_ctrl=acs_ctrl)
        self.tree.add(rel, *ids, 0x060400, config=cfg[:64] if limited else cfg, bridge=buses,
                      driver="pcieport")

    def accel(self, rel: str, *, limited: bool = False) -> None:
        cfg = full_config(0x1D0F, 0x7364, ACCEL, pcie_type=0)
        self.tree.add(rel, 0x1D0F, 0x7364, ACCEL, config=cfg[:64] if limited else cfg)


def switch_machine(root: Path, *, host_ids=(0x8086, 0x3406), acs_ctrl=0, limited=False,
                   cpu=INTEL_CPU) -> Machine:
    """Two accelerators below two downstream ports of one switch below a root port."""
    m = Machine(root, cpu)
    m.host("pci0000:00", host_ids)
    rp = "pci0000:00/0000:00:01.0"
    m.port(rp, (0x8086, 0x3408), 4, (0, 1, 4))
    up = f"{rp}/0000:01:00.0"
    m.port(up, (0x10B5, 0x8796), 5, (1, 2, 4))
    for dev, bus in ((0, 3), (1, 4)):
        dp = f"{up}/0000:02:{dev:02x}.0"
        m.port(dp, (0x10B5, 0x8796), 6, (2, bus, bus), acs_ctrl=acs_ctrl, limited=limited)
        m.accel(f"{dp}/0000:{bus:02x}:00.0")
    return m


def root_ports_machine(root: Path, hosts: dict[str, tuple[int, int] | None], *,
                       port_ids=(0x8086, 0x3408), cpu=INTEL_CPU) -> Machine:
    """One accelerator below a root port on each of two root ports: two ports of one host
    bridge when `hosts` has one entry, else one port on each of two host bridges."""
    m = Machine(root, cpu)
    slots = [(hb, dev) for hb in hosts for dev in ((1, 2) if len(hosts) == 1 else (1,))]
    for hb, ids in hosts.items():
        m.host(hb, ids)
    for n, (hb, dev) in enumerate(slots):
        root_bus = int(hb[-2:], 16)
        bus = root_bus + 1 + n
        rp = f"{hb}/0000:{root_bus:02x}:{dev:02x}.0"
        m.port(rp, port_ids, 4, (root_bus, bus, bus))
        m.accel(f"{rp}/0000:{bus:02x}:00.0")
    return m


def pair(root: Path) -> dict:
    """The verdict between the two accelerators: p2p, route, reason (from the CLI's JSON)."""
    r = CliRunner().invoke(app, ["--sysfs-root", str(root), "topology", "matrix", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 2 and len(doc["endpoints"]) == 2
    # the relation is symmetric
    assert doc["p2p"][0][1] == doc["p2p"][1][0] and doc["p2p_route"][0][1] == doc["p2p_route"][1][0]
    assert doc["p2p"][0][0] is True and doc["p2p_route"][0][0] == "fabric"
    return {"p2p": doc["p2p"][0][1], "route": doc["p2p_route"][0][1], "reason": doc["p2p_reason"][0][1],
            "code": doc["matrix"][0][1]}


# --- paths that meet in a switch --------------------------------------------------------------

def test_one_switch_without_acs_redirect_stays_in_the_fabric(tmp_path: Path) -> None:
    v = pair(switch_machine(tmp_path).root)
    assert (v["code"], v["p2p"], v["route"]) == ("PIX", True, "fabric")
    assert "0000:02:00.0" in v["reason"] and "0000:02:01.0" in v["reason"]


def test_acs_redirect_on_a_switch_port_and_a_root_complex_linux_does_not_allow(tmp_path: Path) -> None:
    # X58's 3406 is not on p2pdma's list and the CPU is Intel: Linux refuses P2P.
    v = pair(switch_machine(tmp_path, acs_ctrl=RR_CR).root)
    assert (v["p2p"], v["route"]) == (False, None)
    assert "ACS RR/CR on 0000:02:00.0" in v["reason"] and "ACS RR/CR on 0000:02:01.0" in v["reason"]
    assert "8086:3406" in v["reason"] and "not on Linux p2pdma's allow-list" in v["reason"]


def test_acs_redirect_to_a_root_complex_linux_allows(tmp_path: Path) -> None:
    v = pair(switch_machine(tmp_path, host_ids=(0x8086, 0x2020), acs_ctrl=0x04).root)
    assert (v["p2p"], v["route"]) == (True, "host_bridge")
    assert "ACS RR on" in v["reason"] and "8086:2020" in v["reason"]


def test_acs_egress_control_alone_redirects_too(tmp_path: Path) -> None:
    v = pair(switch_machine(tmp_path, acs_ctrl=0x20).root)
    assert v["p2p"] is False and "ACS EC on" in v["reason"]


def test_acs_bits_that_do_not_redirect_peer_traffic(tmp_path: Path) -> None:
    # Source validation, translation blocking and upstream forwarding leave peer requests alone.
    v = pair(switch_machine(tmp_path, acs_ctrl=0x01 | 0x02 | 0x10).root)
    assert (v["p2p"], v["route"]) == (True, "fabric")


def test_acs_unreadable_as_non_root_is_unknown(tmp_path: Path) -> None:
    # 64 bytes of config: ACS cannot be read; if it redirects, Linux refuses (3406, Intel CPU).
    v = pair(switch_machine(tmp_path, limited=True).root)
    assert (v["p2p"], v["route"]) == (None, None)
    assert "ACS unreadable on 0000:02:00.0 and 0000:02:01.0" in v["reason"]


def test_acs_unreadable_but_either_route_works(tmp_path: Path) -> None:
    v = pair(switch_machine(tmp_path, host_ids=(0x8086, 0x2020), limited=True).root)
    assert (v["p2p"], v["route"]) == (True, None)


def test_acs_further_down_than_the_meeting_point_does_not_count(tmp_path: Path) -> None:
    # The root port above the switch redirects, but peer traffic between the two downstream
    # ports never reaches it.
    m = switch_machine(tmp_path)
    cfg = full_config(0x8086, 0x3408, 0x060400, pcie_type=4, bridge=(0, 1, 4), acs_ctrl=RR_CR)
    (tmp_path / "devices/pci0000:00/0000:00:01.0/config").write_bytes(cfg)
    assert pair(m.root)["route"] == "fabric"


# --- paths that meet only at the root complex -------------------------------------------------

def test_two_root_ports_of_one_xeon_e5_host_bridge(tmp_path: Path) -> None:
    # Sandy Bridge-EP (3c00) is on p2pdma's list for ports of one host bridge.
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x8086, 0x3C00)}).root)
    assert (v["code"], v["p2p"], v["route"]) == ("PHB", True, "host_bridge")
    assert "pci0000:00 (8086:3c00)" in v["reason"]


def test_two_host_bridges_of_a_root_complex_allowed_only_within_one(tmp_path: Path) -> None:
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x8086, 0x3C00), "pci0000:80": (0x8086, 0x3C00)}).root)
    assert (v["p2p"], v["route"]) == (False, None)
    assert "only between root ports of one host bridge" in v["reason"]


def test_skylake_root_ports_stand_for_their_root_complex_across_host_bridges(tmp_path: Path) -> None:
    # Skylake-SP has no 00.0 on these root buses: the first root port (2030) identifies it, and
    # p2pdma allows it across host bridges.
    m = root_ports_machine(tmp_path, {"pci0000:00": None, "pci0000:80": None}, port_ids=(0x8086, 0x2030))
    v = pair(m.root)
    assert (v["p2p"], v["route"]) == (True, "host_bridge")
    assert "8086:2030" in v["reason"]


def test_a_root_bus_whose_first_function_is_neither_00_0_nor_a_root_port(tmp_path: Path) -> None:
    m = root_ports_machine(tmp_path, {"pci0000:00": None})
    m.tree.add("pci0000:00/0000:00:00.3", 0x8086, 0x2020, 0x088000,
               config=full_config(0x8086, 0x2020, 0x088000, pcie_type=9))
    v = pair(m.root)
    assert v["p2p"] is False and "no function 00.0 or root port first" in v["reason"]


def test_an_amd_zen_cpu_allows_any_root_complex(tmp_path: Path) -> None:
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x1022, 0x9999), "pci0000:80": (0x1022, 0x9999)},
                                cpu=ZEN4_CPU).root)
    assert (v["p2p"], v["route"]) == (True, "host_bridge") and "family 0x19" in v["reason"]


def test_an_amd_cpu_older_than_zen_does_not(tmp_path: Path) -> None:
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x1022, 0x1410)}, cpu=OLD_AMD_CPU).root)
    assert v["p2p"] is False and "amd family 0x15" in v["reason"]


def test_cpu_unknown_and_a_root_complex_off_the_list_is_unknown(tmp_path: Path) -> None:
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x8086, 0x3406)}, cpu=None).root)
    assert (v["p2p"], v["route"]) == (None, None)
    assert "the CPU is unknown" in v["reason"]


def test_cpu_unknown_but_a_zen_root_complex_says_it(tmp_path: Path) -> None:
    v = pair(root_ports_machine(tmp_path, {"pci0000:00": (0x1022, 0x1480)}, cpu=None).root)
    assert (v["p2p"], v["route"]) == (True, "host_bridge")


def test_cpu_from_proc_cpuinfo_beside_a_captured_sys(tmp_path: Path) -> None:
    # hwloc-style captures of old kernels have no cpu modalias but keep proc/cpuinfo.
    root = tmp_path / "sys"
    root_ports_machine(root, {"pci0000:00": (0x8086, 0x3406)}, cpu=None)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 44\n\nprocessor\t: 1\n")
    v = pair(root)
    assert v["p2p"] is False and "intel family 0x6" in v["reason"]


def test_the_cpu_is_read_once_and_only_when_a_verdict_needs_it(tmp_path: Path, monkeypatch) -> None:
    import accelctl.sysfs.cpu as cpu_module

    reads = []
    real = cpu_module.read_cpu_identity
    monkeypatch.setattr(cpu_module, "read_cpu_identity", lambda root: reads.append(root) or real(root))
    # Pairs that stay in the fabric never look at the CPU.
    assert topology_matrix(build_topology(switch_machine(tmp_path / "a").root)).p2p == [[True] * 2] * 2
    assert reads == []
    # Pairs through the root complex need it: read once for the whole matrix.
    topo = build_topology(root_ports_machine(tmp_path / "b", {"pci0000:00": (0x8086, 0x3406)}).root)
    assert topology_matrix(topo).p2p == [[True, False], [False, True]]
    assert len(reads) == 1


def test_the_xeon_phis_of_a_real_machine(real_roots) -> None:
    # Checked by hand on the capture: both Phis sit below root ports of the X58/5520 I/O hub
    # (8086:3406 at 00:00.0, not on p2pdma's list), the CPUs are Intel (proc/cpuinfo), and
    # config is readable to 64 bytes only. Through the root complex Linux refuses P2P.
    v = pair(real_roots["phi"])
    assert v["p2p"] is False
    assert "8086:3406" in v["reason"] and "intel" in v["reason"]


def test_metrics_count_pairs_in_all_three_states(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    root = switch_machine(tmp_path, limited=True).root
    r = CliRunner().invoke(app, ["--sysfs-root", str(root), "metrics"])
    assert r.exit_code == 0, r.output
    families = {f.name: f for f in text_string_to_metric_families(r.stdout)}
    pairs = {s.labels["state"]: s.value for s in families["accelctl_p2p_pairs"].samples}
    assert pairs == {"true": 0, "false": 0, "unknown": 1}

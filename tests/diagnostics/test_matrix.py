"""The pairwise matrix, with every expected code worked out by hand from the specs."""

from __future__ import annotations

from pathlib import Path

from accelctl.diagnostics.matrix import topology_matrix
from accelctl.sim.fixture import bundled_fixture_root
from accelctl.topology import build_topology
from tests.diagnostics.specs import build

NESTED = """
[machine]
name = "nested"
acs = []

[[host_bridge]]
name = "s0"
bus = 0x00
numa_node = 0

[[host_bridge]]
name = "s1"
bus = 0x40
numa_node = 0

[[host_bridge]]
name = "s2"
bus = 0x80
numa_node = 1

[[root_port]]
name = "s0.rp{i}"
parent = "s0"
at = "01.1"
count = 2

[[root_port]]
name = "s1.rp"
parent = "s1"
at = "01.1"

[[root_port]]
name = "s2.rp"
parent = "s2"
at = "01.1"

[[switch]]
name = "top"
parent = "s0.rp0"
ports = 2
@TOP_ACS@

[[switch]]
name = "a"
parent = "top.dp0"
ports = 2

[[card]]
name = "ca{i}"
parent = "a.dp*"
id = "1e52:401e"
driver = "tt"

[[card]]
name = "ct"
parent = "top.dp1"
id = "1e52:401e"
driver = "tt"

[[card]]
name = "r{i}"
parent = "s*.rp"
id = "1e52:401e"
driver = "tt"

[[card]]
name = "rp1card"
parent = "s0.rp1"
id = "1e52:401e"
driver = "tt"
"""
# Buses: s0.rp0 (00:01.1) -> top USP 01:00.0, DSPs 02:00.0/02:01.0; top.dp0 -> switch a USP
# 03:00.0, DSPs 04:00.0/04:01.0 -> cards 05:00.0, 06:00.0; top.dp1 -> card 07:00.0;
# s0.rp1 (00:02.1) -> card 08:00.0; s1 (bus 40, NUMA 0) -> card 41:00.0; s2 (bus 80, NUMA 1) -> 81:00.0.
EPS = ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0", "0000:41:00.0", "0000:81:00.0"]
EXPECTED = [
    # 05     06     07     08     41      81
    ["X",   "PIX", "PXB", "PHB", "NODE", "SYS"],  # 05: a.dp0
    ["PIX", "X",   "PXB", "PHB", "NODE", "SYS"],  # 06: a.dp1
    ["PXB", "PXB", "X",   "PHB", "NODE", "SYS"],  # 07: top.dp1
    ["PHB", "PHB", "PHB", "X",   "NODE", "SYS"],  # 08: s0.rp1
    ["NODE", "NODE", "NODE", "NODE", "X", "SYS"],  # 41: other host bridge, same NUMA node
    ["SYS", "SYS", "SYS", "SYS", "SYS", "X"],      # 81: other NUMA node
]


def test_nested_switches_and_host_bridges(tmp_path: Path) -> None:
    m = topology_matrix(build(NESTED.replace("@TOP_ACS@", "acs = []"), tmp_path))
    assert m.endpoints == EPS
    assert m.matrix == EXPECTED
    fabric = {"X", "PIX", "PXB"}
    # Without ACS, P2P stays in the fabric wherever the paths meet below a host bridge; the
    # builder's root complexes are AMD Genoa (1022:14a4), a Zen part, on which Linux p2pdma
    # allows P2P through the root complex too.
    assert m.p2p_route == [["fabric" if code in fabric else "host_bridge" for code in row] for row in EXPECTED]
    assert m.p2p == [[True] * 6 for _ in EXPECTED]
    assert "AMD Zen root complex" in m.p2p_reason[0][3]


def test_acs_blocks_only_where_the_paths_meet(tmp_path: Path) -> None:
    # RR on the top switch's ports: traffic between 05/06 and 07 meets there and is redirected;
    # 05 <-> 06 meets in switch a (no ACS) and stays peer-to-peer.
    m = topology_matrix(build(NESTED.replace("@TOP_ACS@", 'acs = ["RR"]'), tmp_path))
    assert m.matrix == EXPECTED
    assert m.p2p_route[0][1] == m.p2p_route[1][0] == "fabric"
    assert m.p2p_route[0][2] == m.p2p_route[2][0] == m.p2p_route[1][2] == "host_bridge"
    assert "ACS RR on 0000:02:00.0; ACS RR on 0000:02:01.0 redirect" in m.p2p_reason[0][2]


def test_two_socket_bundled_fixture() -> None:
    # fixtures/two-socket.toml: per socket one external switch with 2 cards x 4 endpoints (on-card
    # switches), ACS off on the external and the on-card switch ports (the OEM BIOS setting).
    m = topology_matrix(build_topology(bundled_fixture_root("two-socket")))
    cards = [["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"],
             ["0000:0b:00.0", "0000:0c:00.0", "0000:0d:00.0", "0000:0e:00.0"],
             ["0000:85:00.0", "0000:86:00.0", "0000:87:00.0", "0000:88:00.0"],
             ["0000:8b:00.0", "0000:8c:00.0", "0000:8d:00.0", "0000:8e:00.0"]]
    assert m.endpoints == [e for c in cards for e in c]
    assert m.names[:2] == ["card0.ep0", "card0.ep1"]
    socket = {0: 0, 1: 0, 2: 1, 3: 1}
    for i in range(16):
        for j in range(16):
            ci, cj = i // 4, j // 4
            want = ("X" if i == j else "CARD" if ci == cj else "PIX" if socket[ci] == socket[cj] else "SYS")
            assert m.matrix[i][j] == want, (m.endpoints[i], m.endpoints[j])
            # ACS off below the root ports: P2P in the fabric under one socket; across sockets
            # through the root complexes (AMD Genoa, Zen: Linux p2pdma allows it).
            route = "fabric" if want in ("X", "CARD", "PIX") else "host_bridge"
            assert (m.p2p[i][j], m.p2p_route[i][j]) == (True, route), (m.endpoints[i], m.endpoints[j])


def test_matrix_json_shape(tmp_path: Path) -> None:
    d = topology_matrix(build(NESTED.replace("@TOP_ACS@", "acs = []"), tmp_path)).to_dict()
    assert [e["bdf"] for e in d["endpoints"]] == EPS
    for key in ("matrix", "p2p", "p2p_route", "p2p_reason"):
        assert len(d[key]) == 6 and all(len(r) == 6 for r in d[key]), key

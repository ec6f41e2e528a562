"""Topology specs for the addressing tests, written so every expected address can be worked out
by hand from the spec (comments give the bus numbers firmware-style depth-first numbering yields)."""

from __future__ import annotations

# Domain 0, root bus 00:
#   00:01.1 slot 1  -> switch card "big" (4 endpoints, serials 0x1000..0x1003)
#                      buses: rp 01, card usp 01:00.0 -> 02, dps 02:00-03.0 -> 03..06, endpoints 03..06:00.0
#   00:02.1 slot 2  -> external switch (not a card) with slots 21, 22; one card per port:
#                      rp 07, usp 07:00.0 -> 08, dp0 -> 09 (g0 09:00.0), dp1 -> 0a (g1 0a:00.0)
#   00:03.1 slot 3  -> empty (bus 0b)
#   00:04.1 slot 4  -> multifunction card "mf", 2 functions at 0c:00.0, 0c:00.1 (serials 0x3000, 0x3001)
# Domain 0, root bus 80:
#   80:01.1 slot 11 -> single card, serial 0x500 (the smallest serial: first in --order serial)
#   80:02.1         -> a two-function NIC whose functions share serial 0x7000 (ambiguous serial)
# Domain 1, root bus 00:
#   0001:00:01.1    -> single card at 0001:01:00.0 (so short "01:00.0" is ambiguous), serial 0x6000
BASE = """
[machine]
name = "addr-test"

[[host_bridge]]
name = "s0"
bus = 0x00
numa_node = 0

[[host_bridge]]
name = "s1"
bus = 0x80
numa_node = 1

[[host_bridge]]
name = "d1"
domain = 1
bus = 0x00
numa_node = 1

[[root_port]]
name = "s0rp{i}"
parent = "s0"
at = "01.1"
count = 4
slot = 1

[[root_port]]
name = "s1rp{i}"
parent = "s1"
at = "01.1"
count = 2
slot = 11

[[root_port]]
name = "d1rp0"
parent = "d1"
at = "01.1"

[[card]]
name = "big"
parent = "s0rp0"
id = "1002:74a1"
layout = "switch"
endpoints = 4
serial = 0x1000

[[switch]]
name = "psw"
parent = "s0rp1"
ports = 2
slot = 21

[[card]]
name = "g{i}"
parent = "psw.dp[0-1]"
id = "1da3:1060"
serial = {G_SERIALS}

{RP2}

[[card]]
name = "mf"
parent = "s0rp3"
id = "1e52:401e"
layout = "multifunction"
endpoints = 2
serial = 0x3000

[[card]]
name = "s1card"
parent = "s1rp0"
id = "1d0f:7164"
serial = 0x500

[[endpoint]]
name = "nic"
parent = "s1rp1"
id = "15b3:1021"
class = 0x020000
functions = 2
serial = [0x7000, 0x7000]

[[card]]
name = "d1card"
parent = "d1rp0"
id = "1d0f:7164"
serial = 0x6000
"""

#: nothing below 00:03.1
EMPTY_RP2 = ""
#: a NIC behind an external switch below 00:03.1: bus numbers of "mf" shift from 0c to 0f
#: (rp2 0b, usp 0b:00.0 -> 0c, dp0 -> 0d (NIC), dp1 -> 0e; rp3 -> 0f), no accelerator added
SWITCHED_NIC_RP2 = """
[[switch]]
name = "nsw"
parent = "s0rp2"
ports = 2

[[endpoint]]
name = "nic2"
parent = "nsw.dp0"
id = "15b3:1021"
class = 0x020000
"""
#: an accelerator card inserted below 00:03.1 (bus 0b): it becomes card3, later cards shift
NEW_CARD_RP2 = """
[[card]]
name = "newcard"
parent = "s0rp2"
id = "1002:74a1"
serial = 0x5000
"""


def spec(rp2: str = EMPTY_RP2, g_serials: str = "[0x2000, 0x2100]") -> str:
    return BASE.replace("{RP2}", rp2).replace("{G_SERIALS}", g_serials)


def sn(value: int) -> str:
    """A serial as sysfs prints it, written out here so tests do not depend on code under test."""
    return "-".join(f"{b:02x}" for b in value.to_bytes(8, "big"))

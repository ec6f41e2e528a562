"""Small topology specs for the diagnostics tests, and how their bus numbers come out.

Bus numbering (depth-first, as firmware does it): root port ``rpN`` is at 00:0(N+1).1. With one
plain card per root port, rp0's card is 01:00.0 and rp1's is 02:00.0. With a switch card
(on-card switch, 4 endpoints) below each root port: rp0 -> USP 01:00.0, DSPs 02:0[0-3].0,
endpoints on buses 03..06; rp1 -> USP 07:00.0, DSPs 08:0[0-3].0, endpoints on buses 09..0c.
"""

from __future__ import annotations

from pathlib import Path

from accelctl.diagnostics import Report, parse_manifest, run_diagnostics
from accelctl.sim.fixture import build_fixture, parse_spec
from accelctl.topology import Topology, build_topology

HEAD = """
[machine]
name = "diag-test"
acs = []
{machine}

[[host_bridge]]
name = "s0"
bus = 0
numa_node = 0

[[root_port]]
name = "rp{{i}}"
parent = "s0"
at = "01.1"
count = 2
"""

CARD = """
[[card]]
name = "c{index}"
parent = "rp{index}"
id = "1e52:401e"
gen = 4
{extra}
"""


def two_cards(card1: str = "", card0: str = "", machine: str = "", driver: bool = True) -> str:
    """Two single-endpoint cards (Gen4 x16 below Gen5 x16 root ports); extra keys per card."""
    drv = 'driver = "tt"\n'
    return (HEAD.format(machine=machine)
            + CARD.format(index=0, extra=drv + card0)
            + CARD.format(index=1, extra=(drv if driver else "") + card1))


def two_switch_cards(card1: str = "") -> str:
    return HEAD.format(machine="") + "".join(
        f"""
[[card]]
name = "c{i}"
parent = "rp{i}"
id = "1002:74a1"
layout = "switch"
endpoints = 4
driver = "amdgpu"
{card1 if i == 1 else ""}
"""
        for i in (0, 1)
    )


def build(spec: str, where: Path) -> Topology:
    where.mkdir(parents=True, exist_ok=True)
    build_fixture(parse_spec(spec), where)
    return build_topology(where)


def diagnose(spec: str, where: Path, manifest: str | None = None, level: int = 3) -> Report:
    m = parse_manifest(manifest, path="test-manifest.toml") if manifest else None
    return run_diagnostics(build(spec, where), manifest=m, level=level)


def codes(report: Report) -> list[tuple[str, str, str]]:
    """(code, severity, subject) of every finding, in report order."""
    return [(f.code, f.severity.value, f.subject) for f in report.findings]

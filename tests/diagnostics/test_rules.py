"""Each finding code: a spec that triggers it and one that does not. Expected subjects come from
the spec (bus numbering explained in specs.py), never from the code under test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from accelctl.diagnostics import CODES, run_diagnostics
from accelctl.topology import build_topology
from tests.diagnostics.specs import HEAD, build, codes, diagnose, two_cards, two_switch_cards

C0, C1 = "0000:01:00.0", "0000:02:00.0"
RP0, RP1 = "0000:00:01.1", "0000:00:02.1"


def test_clean_machine_has_no_findings(tmp_path: Path) -> None:
    report = diagnose(two_cards(), tmp_path)
    assert codes(report) == []
    assert report.summary == {"error": 0, "warning": 0, "info": 0}
    assert not report.failed
    assert report.checked["accelerator_endpoints"] == 2


def test_width_drop_is_an_error_naming_the_hop(tmp_path: Path) -> None:
    report = diagnose(two_cards("trained = {width = 8}"), tmp_path)
    assert codes(report) == [("LINK_DOWNTRAINED", "error", C1)]
    f = report.findings[0]
    assert f.related == (C1,)
    assert f"{RP1} -> {C1}" in f.message and "x8" in f.message and "x16" in f.message
    assert report.failed


def test_speed_only_drop_is_a_warning(tmp_path: Path) -> None:
    report = diagnose(two_cards("trained = {gen = 3}"), tmp_path)
    assert codes(report) == [("LINK_DOWNTRAINED", "warning", C1)]
    assert not report.failed


def test_link_below_root_port_capability_but_at_card_capability_is_fine(tmp_path: Path) -> None:
    # Root ports are Gen5, cards Gen4: 16 GT/s is the lower capability of the two ends.
    assert codes(diagnose(two_cards(), tmp_path)) == []


def test_downtrained_switch_uplink_limits_every_endpoint_below(tmp_path: Path) -> None:
    report = diagnose(two_switch_cards("trained = {width = 4}"), tmp_path)
    assert codes(report) == [("LINK_DOWNTRAINED", "error", "0000:07:00.0")]
    assert report.findings[0].related == ("0000:09:00.0", "0000:0a:00.0", "0000:0b:00.0", "0000:0c:00.0")


def test_endpoint_missing_against_peers(tmp_path: Path) -> None:
    report = diagnose(two_switch_cards('endpoint_faults = {2 = "missing"}'), tmp_path)
    assert codes(report) == [("ENDPOINT_MISSING", "error", "0000:07:00.0")]
    assert report.findings[0].related == ("0000:08:02.0",)  # the empty on-card port


def test_endpoint_missing_against_manifest_without_peers(tmp_path: Path) -> None:
    spec = HEAD.format(machine="") + """
[[card]]
name = "c0"
parent = "rp0"
id = "1002:74a1"
layout = "switch"
endpoints = 4
driver = "amdgpu"
endpoint_faults = {3 = "missing"}
"""
    # No peers, no manifest: the empty on-card switch port (02:03.0) still gives it away.
    report = diagnose(spec, tmp_path / "a")
    assert codes(report) == [("ENDPOINT_MISSING", "error", "0000:01:00.0")]
    assert report.findings[0].related == ("0000:02:03.0",)
    report = diagnose(spec, tmp_path / "b", "[expect]\nendpoints_per_card = 4\n")
    assert codes(report) == [("ENDPOINT_MISSING", "error", "0000:01:00.0")]
    assert "manifest expects 4" in report.findings[0].message


def test_device_inaccessible(tmp_path: Path) -> None:
    report = diagnose(two_cards('fault = "off_bus"'), tmp_path)
    assert ("DEVICE_INACCESSIBLE", "error", C1) in codes(report)
    assert "DEVICE_INACCESSIBLE" not in {c for c, _, _ in codes(diagnose(two_cards(), tmp_path / "ok"))}


def test_driver_unbound(tmp_path: Path) -> None:
    assert codes(diagnose(two_cards(driver=False), tmp_path)) == [("DRIVER_UNBOUND", "warning", C1)]


@pytest.mark.parametrize(
    ("aer", "severity"),
    [("{correctable = {RxErr = 5}}", "warning"), ("{nonfatal = {CmpltTO = 1}}", "error"),
     ("{fatal = {SDES = 1}}", "error")],
)
def test_aer_errors(tmp_path: Path, aer: str, severity: str) -> None:
    report = diagnose(two_cards(f"aer = {aer}"), tmp_path)
    assert codes(report) == [("AER_ERRORS", severity, C1)]


def test_aer_is_level_two(tmp_path: Path) -> None:
    assert codes(diagnose(two_cards("aer = {fatal = {SDES = 1}}"), tmp_path, level=1)) == []


SWITCH = HEAD.format(machine="") + """
[[switch]]
name = "sw"
parent = "rp0"
ports = 3
@ACS@

[[card]]
name = "c{i}"
parent = "sw.dp[01]"
id = "1e52:401e"
driver = "tt"

[[endpoint]]
name = "nvme"
parent = "sw.dp2"
id = "144d:a80a"
class = 0x010802
driver = "nvme"
"""
# rp0 -> switch USP 01:00.0 -> DSPs 02:00.0, 02:01.0, 02:02.0 -> cards 03:00.0, 04:00.0, NVMe 05:00.0


def test_acs_blocking_between_cards_under_one_switch(tmp_path: Path) -> None:
    report = diagnose(SWITCH.replace("@ACS@", 'acs = ["RR", "CR"]'), tmp_path)
    assert codes(report) == [("ACS_P2P_BLOCKED", "warning", "0000:02:00.0"),
                             ("ACS_P2P_BLOCKED", "warning", "0000:02:01.0")]
    assert report.findings[0].related == ("0000:04:00.0",)


def test_acs_off_or_single_card_is_fine(tmp_path: Path) -> None:
    assert codes(diagnose(SWITCH.replace("@ACS@", "acs = []"), tmp_path / "off")) == []
    # ACS on, but the only other device below the switch is an NVMe drive: not a card pair.
    one = SWITCH.replace("@ACS@", 'acs = ["RR", "CR", "EC"]').replace('parent = "sw.dp[01]"', 'parent = "sw.dp0"')
    assert codes(diagnose(one, tmp_path / "one")) == []


def test_bus_numbers_exhausted(tmp_path: Path) -> None:
    spec = HEAD.format(machine="") + """
[[switch]]
name = "sw"
parent = "rp1"
fault = "bus_exhausted"

[[card]]
name = "c0"
parent = "rp0"
id = "1e52:401e"
driver = "tt"
"""
    # rp0's card takes bus 01; rp1 gets bus 02 where the hot-added switch USP sits, with no buses.
    assert codes(diagnose(spec, tmp_path)) == [("BUS_NUMBERS_EXHAUSTED", "error", "0000:02:00.0")]


def test_bar_unassigned_against_peers(tmp_path: Path) -> None:
    report = diagnose(two_cards('fault = "bar_unassigned"'), tmp_path)
    # The failed card also fails to probe, so its driver is unbound.
    assert codes(report) == [("BAR_UNASSIGNED", "error", C1), ("DRIVER_UNBOUND", "warning", C1)]
    assert "BAR0" in report.findings[0].message


def test_bridge_window_not_containing_child_bar(tmp_path: Path) -> None:
    # Move rp0's card BARs outside rp0's windows, as a snapshot of broken firmware would show.
    topo_dir = tmp_path / "t"
    build(two_cards(), topo_dir)
    resource = topo_dir / "devices/pci0000:00/0000:00:01.1/0000:01:00.0/resource"
    lines = resource.read_text().splitlines()
    start, end, flags = (int(x, 16) for x in lines[0].split())
    size = end - start + 1
    lines[0] = f"0x{0x7000000000:016x} 0x{0x7000000000 + size - 1:016x} 0x{flags:016x}"
    resource.write_text("\n".join(lines) + "\n")
    report = run_diagnostics(build_topology(topo_dir))
    assert ("BAR_UNASSIGNED", "error", RP0) in codes(report)


_BUS_REGISTER = {"secondary_bus_number": 0x19, "subordinate_bus_number": 0x1A}


def _write_attr(root: Path, rel: str, value: int) -> None:
    """Change a bridge bus number the way hardware would: the kernel reads these attributes live
    from config space, so the register and the attribute change together."""
    path = root / rel
    path.write_text(f"{value}\n")
    config = path.parent / "config"
    data = bytearray(config.read_bytes())
    data[_BUS_REGISTER[path.name]] = value
    config.write_bytes(bytes(data))


def test_bus_range_conflict(tmp_path: Path) -> None:
    good = tmp_path / "good"
    build(two_cards(), good)
    assert "BUS_RANGE_CONFLICT" not in {c for c, _, _ in codes(run_diagnostics(build_topology(good)))}
    # rp1 claims buses 01..02, overlapping rp0's [01-01]: the later sibling is the subject.
    bad = tmp_path / "bad"
    build(two_cards(), bad)
    _write_attr(bad, "devices/pci0000:00/0000:00:02.1/secondary_bus_number", 1)
    found = codes(run_diagnostics(build_topology(bad)))
    assert ("BUS_RANGE_CONFLICT", "error", RP1) in found


def test_bus_range_not_holding_child(tmp_path: Path) -> None:
    root = tmp_path / "t"
    build(two_switch_cards(), root)
    # card0's switch USP (01:00.0) spans [02-06]; shrink it to [02-04]: DSPs 02:02.0/02:03.0
    # (buses 05 and 06) fall outside.
    _write_attr(root, "devices/pci0000:00/0000:00:01.1/0000:01:00.0/subordinate_bus_number", 4)
    found = codes(run_diagnostics(build_topology(root)))
    assert ("BUS_RANGE_CONFLICT", "error", "0000:01:00.0") in found
    assert codes(run_diagnostics(build_topology(root), level=2)).count(
        ("BUS_RANGE_CONFLICT", "error", "0000:01:00.0")) == 0


def test_limited_visibility_without_root(tmp_path: Path) -> None:
    report = diagnose(two_cards(machine='config_access = "user"'), tmp_path)
    assert codes(report) == [("LIMITED_VISIBILITY", "info", "machine")]
    assert "capabilities" in report.findings[0].message
    assert not report.failed


def test_no_accelerators_is_said_and_fails_with_a_manifest(tmp_path: Path) -> None:
    spec = HEAD.format(machine="") + """
[[endpoint]]
name = "nvme"
parent = "rp0"
id = "144d:a80a"
class = 0x010802
driver = "nvme"
"""
    report = diagnose(spec, tmp_path / "a")
    assert codes(report) == [("NO_ACCELERATORS", "info", "machine")]
    assert not report.failed
    report = diagnose(spec, tmp_path / "b", "[expect]\ncards = 8\n")
    assert codes(report) == [("CARD_COUNT_MISMATCH", "error", "machine"), ("NO_ACCELERATORS", "info", "machine")]
    assert report.failed


def test_link_down_when_manifest_expects_a_card(tmp_path: Path) -> None:
    spec = two_cards('fault = "missing"')
    assert codes(diagnose(spec, tmp_path / "a")) == []  # without a manifest an empty port is fine
    report = diagnose(spec, tmp_path / "b", f'[expect]\ncards = 2\n[[card]]\nport = "{RP1}"\n')
    assert codes(report) == [("CARD_COUNT_MISMATCH", "error", "machine"), ("LINK_DOWN", "error", RP1)]


def test_slot_presence_without_link_is_link_down(tmp_path: Path) -> None:
    # A card sits in rp1's slot (presence detect set in Slot Status) but nothing enumerated below:
    # rebuild the tree with the card, then remove the card's directory, keeping the port's config.
    root = tmp_path / "t"
    build(two_cards().replace("count = 2", "count = 2\nslot = 1"), root)  # slots 1 and 2

    shutil.rmtree(root / "devices/pci0000:00/0000:00:02.1/0000:02:00.0")
    os.unlink(root / "bus/pci/devices/0000:02:00.0")
    topo = build_topology(root)
    assert topo.functions[RP1].slot_presence
    assert ("LINK_DOWN", "error", RP1) in codes(run_diagnostics(topo))


def test_manifest_card_entries(tmp_path: Path) -> None:
    manifest = f"""
[expect]
cards = 2
endpoints_per_card = 1
[[card]]
port = "{RP0}"
id = "1e52:401e"
numa_node = 0
[[card]]
port = "{RP1}"
id = "10de:2330"
numa_node = 1
[[card]]
port = "0000:00:05.1"
"""
    report = diagnose(two_cards(), tmp_path, manifest)
    # Sorted by subject address: the missing port 00:05.1 comes before card1 at 02:00.0.
    assert codes(report) == [
        ("CARD_MISSING", "error", "0000:00:05.1"),
        ("CARD_MISMATCH", "error", C1),
        ("CARD_MISMATCH", "error", C1),
    ]


def test_link_below_manifest(tmp_path: Path) -> None:
    # Gen4 cards at 16 GT/s x16; the manifest wants 32 GT/s: the hardware cannot -> error.
    report = diagnose(two_cards(), tmp_path, "[expect]\nmin_link_speed_gts = 32.0\n")
    assert codes(report) == [("LINK_BELOW_MANIFEST", "error", C0), ("LINK_BELOW_MANIFEST", "error", C1)]
    ok = diagnose(two_cards(), tmp_path / "ok", "[expect]\nmin_link_speed_gts = 16.0\nmin_link_width = 16\n")
    assert codes(ok) == []
    narrow = diagnose(two_cards("trained = {width = 8}"), tmp_path / "n", "[expect]\nmin_link_width = 16\n")
    assert ("LINK_BELOW_MANIFEST", "error", C1) in codes(narrow)


def test_manifest_ignores_nics_and_nvme(tmp_path: Path) -> None:
    # The NVMe drive runs x4: a min_link_width of 16 is about accelerators, not about it.
    report = diagnose(SWITCH.replace("@ACS@", "acs = []"), tmp_path, "[expect]\ncards = 2\nmin_link_width = 16\n")
    assert codes(report) == []


def test_every_emitted_code_is_catalogued_and_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "findings.md").read_text()
    for code in CODES:
        assert f"`{code}`" in doc, code

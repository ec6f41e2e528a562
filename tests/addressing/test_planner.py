"""The planner: agreement with every bundled fixture, hand-computed numbers, running out, --add,
hot-add checks and the explanations the diagnostics use."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from accelctl.addressing.plan_mmio import Apertures
from accelctl.addressing.planner import (
    PlanInputError,
    check_against_topology,
    explain_bar_unassigned,
    explain_bus_exhaustion,
    parse_addition,
    plan,
)
from accelctl.cli.app import app
from accelctl.sim.fixture import bundled_fixture_root, list_bundled_fixtures
from accelctl.topology import build_topology
from tests.addressing import specs
from tests.addressing.conftest import build_tree

G, M, K, T = 1 << 30, 1 << 20, 1 << 10, 1 << 40


def _fixture_params():
    # building the >=2,000-function scale fixture takes ~30 s on a cold cache: mark it slow
    return [pytest.param(n, marks=pytest.mark.slow) if n == "scale" else n for n in list_bundled_fixtures()]


@pytest.mark.parametrize("name", _fixture_params())
def test_planner_agrees_with_bundled_fixture(name):
    topo = build_topology(bundled_fixture_root(name), names=False)
    assert check_against_topology(topo) == []


def test_agreement_check_can_fail(trees, tmp_path):
    # A tree whose numbers are not the firmware's: 00:04.1 starts at bus 0d instead of 0c.
    from tests.addressing.conftest import copy_in_other_order

    copy = tmp_path / "edited"
    copy_in_other_order(trees["base"], copy, seed=None)
    # both sources of the fact: the sysfs attribute and the bridge header's secondary bus (0x19)
    port = copy / "devices/pci0000:00/0000:00:04.1"
    (port / "secondary_bus_number").write_text("13\n")
    config = bytearray((port / "config").read_bytes())
    config[0x19] = 0x0D
    (port / "config").write_bytes(bytes(config))
    topo = build_topology(copy, names=False)
    assert check_against_topology(topo) == ["0000:00:04.1: buses planned 0c-0c, found 0d-0c"]


@pytest.fixture(scope="module")
def base_plan(trees):
    topo = build_topology(trees["base"], names=False)
    by_id = {}
    result = plan(topo)
    for root in result.roots:
        stack = list(root.functions)
        while stack:
            f = stack.pop()
            by_id[f.id] = f
            stack.extend(f.children)
    return topo, result, by_id


def test_hand_computed_buses_and_windows(base_plan):
    topo, result, f = base_plan
    # bus numbers from the comments in tests/addressing/specs.py
    assert [(b, f[b].secondary, f[b].subordinate) for b in ("0000:00:01.1", "0000:01:00.0", "0000:02:03.0",
                                                            "0000:00:02.1", "0000:00:03.1", "0000:00:04.1")] == [
        ("0000:00:01.1", 0x01, 0x06),
        ("0000:01:00.0", 0x02, 0x06),
        ("0000:02:03.0", 0x06, 0x06),
        ("0000:00:02.1", 0x07, 0x0A),
        ("0000:00:03.1", 0x0B, 0x0B),
        ("0000:00:04.1", 0x0C, 0x0C),
    ]
    # card BARs: 16G + 2M 64-bit prefetchable, 512K 32-bit. 32-bit windows from 2 GiB, 1 MiB each
    # per endpoint; 64-bit windows from 1 TiB, packed largest alignment (16G) first.
    expected = {
        "0000:00:01.1": {"mem_window": (0x8000_0000, 4 * M), "pref_window": (T, 112 * G + 2 * M)},
        "0000:00:02.1": {"mem_window": (0x8040_0000, 2 * M), "pref_window": (T + 128 * G, 48 * G + 2 * M)},
        # rp1 ends at T + 176G + 2M, so rp3 starts at the next 16G boundary
        "0000:00:04.1": {"mem_window": (0x8060_0000, 1 * M), "pref_window": (T + 192 * G, 32 * G + 4 * M)},
    }
    for bridge, windows in expected.items():
        assert {"mem_window": f[bridge].mem_window, "pref_window": f[bridge].pref_window} == windows
        assert {k: topo.functions[bridge].windows[k] for k in windows} == windows  # the builder agrees
    # mf: ep0.BAR0 at +0, ep1.BAR0 at +16G, ep0.BAR2 at +32G, ep1.BAR2 at +32G+2M
    assert f["0000:0c:00.1"].bar_addr == {0: T + 208 * G, 2: T + 224 * G + 2 * M, 5: 0x8060_0000 + 512 * K}
    assert result.fits and result.issues == []


def test_bus_numbers_run_out_at_the_next_root_bus(tmp_path):
    # s1 at bus 0x10: s0 may use buses up to 0f; it uses 00-0c. An 8-endpoint switch card at
    # 00:03.1 needs 0b (top), 0c (its internal bus), 0d-14 (one per port): 00:04.1 would need 15.
    text = specs.spec().replace("bus = 0x80", "bus = 0x10")
    topo = build_topology(build_tree(text, tmp_path / "t"), names=False)
    assert plan(topo).fits
    result = plan(topo, [parse_addition("port=0000:00:03.1,endpoints=8,bar=64G")])
    assert not result.fits
    (issue,) = result.issues
    assert (issue.resource, issue.where) == ("bus", "pci0000:00")
    assert "may only use buses up to 0f" in issue.message
    assert result.additions[0].boot_buses == (0x0B, 0x14)


def test_mmio_runs_out_without_above_4g(base_plan):
    topo, _, _ = base_plan
    result = plan(topo, apertures=Apertures(above_4g=False))
    assert not result.fits
    assert [(i.resource, i.where) for i in result.issues][0] == ("mem32", "pci0000:00")
    assert "enable Above-4G decoding" in result.issues[0].message


def test_pref64_aperture_limit(base_plan):
    topo, _, _ = base_plan
    result = plan(topo, apertures=Apertures(pref64_end=T + 100 * G))
    assert [(i.resource, i.where) for i in result.issues] == [("pref64", "pci0000:00")]


def test_addition_boot_and_hot_add(base_plan):
    topo, _, _ = base_plan
    result = plan(topo, [parse_addition("port=0000:00:03.1,endpoints=4,bar=64G")])
    assert result.fits
    (add,) = result.additions
    assert add.boot_buses == (0x0B, 0x10)  # top 0b, internal bus 0c, ports 0d-10
    assert not add.hot_add_fits
    assert add.hot_add_issues[0].startswith("bus: 0000:00:03.1 spans buses 0b-0b; the card needs 6")
    assert "64-bit prefetchable window of 0000:00:03.1 is unassigned, the card needs 256 GiB" in add.hot_add_issues


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("endpoints=4", "port= is required"),
        ("port=0000:00:03.1,bar=3G", "power of two"),
        ("port=0000:00:03.1,colour=red", "unknown key"),
        ("port=0000:00:03.1,endpoints=x", "not a number"),
        ("port=0000:00:03.1,endpoints=2,layout=single", "one endpoint"),
    ],
)
def test_bad_additions(text, problem):
    with pytest.raises(PlanInputError, match=problem):
        parse_addition(text)


@pytest.mark.parametrize(
    ("port", "problem"),
    [("0000:00:01.1", "already holds a device"), ("0000:03:00.0", "cards go below"), ("0000:00:09.1", "no PCI function")],
)
def test_additions_need_an_empty_port(base_plan, port, problem):
    topo, _, _ = base_plan
    with pytest.raises(PlanInputError, match=problem):
        plan(topo, [parse_addition(f"port={port},endpoints=1")])


def test_explain_bus_exhaustion():
    topo = build_topology(bundled_fixture_root("fault-bus-exhausted"), names=False)
    text = explain_bus_exhaustion(topo, "0000:05:00.0")
    assert "needs 3 buses" in text  # its secondary + 2 ports, like card0's switch 0000:01:00.0
    assert "0000:00:02.1 spans buses 05-05" in text
    assert "Renumbered at boot it fits" in text and "pci=hpbussize" in text
    assert "not exhausted" in explain_bus_exhaustion(topo, "0000:01:00.0")


def test_explain_bar_unassigned():
    topo = build_topology(bundled_fixture_root("fault-bar-unassigned"), names=False)
    text = explain_bar_unassigned(topo, "0000:04:00.0")
    assert "BAR0 16 GiB 64-bit prefetchable" in text and "0000:03:00.0, the same model" in text
    assert "0000:02:01.0 has no 64-bit prefetchable window" in text
    assert "with Above-4G decoding it fits; without it, it does not" in text
    assert "pref window unassigned" in explain_bar_unassigned(topo, "0000:02:01.0")


def test_plan_cli(trees):
    runner = CliRunner()
    r = runner.invoke(app, ["--sysfs-root", str(trees["base"]), "addr", "plan", "--json",
                            "--add", "port=0000:00:03.1,endpoints=2,bar=32G"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["fits"] is True and doc["schema_version"] == 1
    assert doc["additions"][0]["boot_buses"] == ["0b", "0e"]
    bad = runner.invoke(app, ["--sysfs-root", str(trees["base"]), "addr", "plan", "--no-above-4g"])
    assert bad.exit_code == 1 and "does not fit" in bad.stdout


def test_plan_cli_from_spec(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(specs.spec())
    r = CliRunner().invoke(app, ["addr", "plan", "--json", "--spec", str(spec)])
    assert r.exit_code == 0, r.output
    roots = {x["id"]: x for x in json.loads(r.stdout)["roots"]}
    assert roots["pci0000:00"]["last_bus"] == "0c" and roots["pci0000:80"]["last_bus"] == "82"

"""Dry-run blast radius on bundled fixtures. Expected BDF lists are derived by hand from
fixtures/two-socket.toml and one-card.toml (card0 sits below the external switch port 02:00.0,
its own switch 03:00.0 -> ports 04:00.0..04:03.0 -> endpoints 05..08:00.0)."""

from __future__ import annotations

import json

import pytest

from tests.snapshot._cli import run

CARD0 = [
    "0000:03:00.0",
    "0000:04:00.0",
    "0000:04:01.0",
    "0000:04:02.0",
    "0000:04:03.0",
    "0000:05:00.0",
    "0000:06:00.0",
    "0000:07:00.0",
    "0000:08:00.0",
]


def plan(fixture: str, device: str, level: str) -> dict:
    r = run("--fixture", fixture, "reset", device, "--level", level, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 2
    return doc["plan"]


def bdfs(p: dict) -> list[str]:
    return [a["bdf"] for a in p["affected"]]


def test_flr_is_one_function():
    p = plan("two-socket", "card0.ep2", "flr")
    assert bdfs(p) == ["0000:07:00.0"]
    assert p["affected"][0]["name"] == "card0.ep2" and p["affected"][0]["card"] == 0
    assert p["target"] == "0000:07:00.0" and p["level"] == "flr"
    assert set(p) >= {"level", "target", "affected", "in_use", "steps"}


def test_bus_at_a_card_downstream_port_is_its_subtree():
    assert bdfs(plan("two-socket", "0000:04:01.0", "bus")) == ["0000:06:00.0"]


def test_bus_at_an_external_switch_port_takes_the_whole_card_below():
    p = plan("two-socket", "0000:02:00.0", "bus")
    assert bdfs(p) == CARD0 and p["reset_point"] == "0000:02:00.0"


def test_bus_of_an_endpoint_resets_its_parent_bus():
    p = plan("two-socket", "card0.ep1", "bus")
    assert p["reset_point"] == "0000:04:01.0" and bdfs(p) == ["0000:06:00.0"]


def test_card_is_every_function_of_the_card_switch_included():
    for name in ("card0", "card0.ep3", "0000:05:00.0"):
        p = plan("two-socket", name, "card")
        assert bdfs(p) == CARD0, name
        assert p["reset_point"] == "0000:02:00.0"
    addrs = {a["bdf"]: a["name"] for a in plan("two-socket", "card0", "card")["affected"]}
    assert addrs["0000:05:00.0"] == "card0.ep0" and addrs["0000:03:00.0"] is None


def test_card_on_a_root_port():
    p = plan("one-card", "card0", "card")
    assert bdfs(p) == ["0000:01:00.0"] and p["reset_point"] == "0000:00:01.1"


def test_controller_is_one_endpoint():
    assert bdfs(plan("two-socket", "card0.ep0", "controller")) == ["0000:05:00.0"]


@pytest.mark.parametrize(
    ("device", "level", "says"),
    [
        ("0000:02:00.0", "flr", "supports: bus"),  # a switch port: no FLR
        ("0000:04:00.0", "controller", "not an accelerator endpoint"),
        ("card0", "flr", "card0.ep0"),  # a card with 4 endpoints: name one
    ],
)
def test_unsupported_level_is_refused_naming_what_is_supported(device, level, says):
    r = run("--fixture", "two-socket", "reset", device, "--level", level, "--dry-run")
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert says in r.stderr


def test_no_terminal_no_yes_is_refused_before_anything():
    r = run("--fixture", "one-card", "reset", "card0", "--level", "card")
    assert r.returncode == 8 and "--yes" in r.stderr

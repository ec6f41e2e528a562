"""`diag` on a machine without accelerators: nothing was checked, which is not a pass
(nvidia-smi fails when it finds no GPU). Exit 9 and say so; --allow-empty accepts it."""

from __future__ import annotations

import json

import pytest

from tests.cli._run import accelctl

EMPTY = """
[machine]
name = "no-accelerators"
[[host_bridge]]
name = "s0"
domain = 0
bus = 0x00
numa_node = 0
[[root_port]]
name = "rp0"
parent = "s0"
at = "01.1"
gen = 4
width = 16
slot = 1
"""


@pytest.fixture(scope="module")
def empty_machine(tmp_path_factory):
    from accelctl.sim.fixture import build_fixture, parse_spec

    return build_fixture(parse_spec(EMPTY, path="empty.toml"), tmp_path_factory.mktemp("empty") / "sys")


def test_nothing_to_check_is_exit_9_and_says_so(empty_machine):
    r = accelctl("--sysfs-root", str(empty_machine), "diag")
    assert r.returncode == 9, r.stdout + r.stderr
    assert "NOTHING TO CHECK" in r.stdout and "PASS" not in r.stdout
    assert "--allow-empty" in r.stdout


def test_nothing_to_check_in_json(empty_machine):
    r = accelctl("--sysfs-root", str(empty_machine), "diag", "--json")
    assert r.returncode == 9
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "nothing_to_check"
    assert [f["code"] for f in doc["findings"]] == ["NO_ACCELERATORS"]


def test_allow_empty_accepts_it(empty_machine):
    r = accelctl("--sysfs-root", str(empty_machine), "diag", "--allow-empty", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "nothing_to_check"


def test_a_machine_with_accelerators_still_passes():
    r = accelctl("--fixture", "one-card", "diag")
    assert r.returncode == 0 and "PASS: 0 errors, 0 warnings" in r.stdout and "1 card, 1 accelerator endpoint" in r.stdout

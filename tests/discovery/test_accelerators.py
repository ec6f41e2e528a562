"""Which functions are accelerators: the documented table (docs/accelerators.md), the one
syntax of --accel-id and $ACCELCTL_ACCEL_IDS, and the rule each function was matched by.

The machine is written by hand with the ids and classes real devices report (lspci -nn on real
machines, hwloc's test trees): none of these is a processing accelerator (class 12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelctl.errors import InvalidAcceleratorIdError
from accelctl.topology import AcceleratorMatcher, build_topology
from tests.discovery.minitree import MiniTree

#: bdf -> (vendor, device, class, expected rule with no user ids)
DEVICES = {
    "0000:00:02.0": (0x1A03, 0x2000, 0x030000, None),          # ASPEED BMC VGA
    "0000:00:03.0": (0x102B, 0x0522, 0x030000, None),          # Matrox G200e BMC VGA
    "0000:00:04.0": (0x8086, 0x225C, 0x0B4000, "class:0b40"),  # Xeon Phi co-processor
    "0000:00:05.0": (0x1BCF, 0x001C, 0x0B4000, "class:0b40"),  # NEC SX-Aurora Vector Engine
    "0000:00:06.0": (0x1002, 0x740F, 0x038000, "class:0380"),  # AMD Instinct MI210
    "0000:00:07.0": (0x10DE, 0x2204, 0x030000, "gpu:10de"),    # NVIDIA GPU with a display class
    "0000:00:08.0": (0x10DE, 0x20B0, 0x030200, "class:0302"),  # NVIDIA A100 (3D controller)
    "0000:00:09.0": (0x1AC1, 0x089A, 0x088000, "id:1ac1:089a"),  # Coral Edge TPU, system peripheral
    "0000:00:0a.0": (0x1DA3, 0x1020, 0x120000, "class:12"),    # Gaudi2
    "0000:00:0b.0": (0x15B3, 0x1013, 0x020700, None),          # ConnectX-4 InfiniBand
}


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    tree = MiniTree(tmp_path)
    for bdf, (vendor, device, cls, _) in DEVICES.items():
        tree.add(f"pci0000:00/{bdf}", vendor, device, cls, pcie_type=9)
    return tmp_path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "ACCELCTL_ACCEL_IDS"}
    return subprocess.run([sys.executable, "-m", "accelctl", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})})


def test_the_built_in_table(machine):
    topo = build_topology(machine, names=False)
    got = {bdf: fn.accelerator_rule for bdf, fn in topo.functions.items()}
    assert got == {bdf: rule for bdf, (*_, rule) in DEVICES.items()}
    assert all(fn.is_accelerator == (fn.accelerator_rule is not None) for fn in topo.functions.values())


def test_list_all_json_says_for_every_function_whether_and_why(machine):
    proc = cli("--sysfs-root", str(machine), "list", "--all", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {d["id"]: (d["is_accelerator"], d["accelerator_rule"]) for d in json.loads(proc.stdout)["devices"]}
    assert rows == {bdf: (rule is not None, rule) for bdf, (*_, rule) in DEVICES.items()}


@pytest.mark.parametrize("how", ["option", "repeated option", "environment"])
def test_option_and_environment_take_the_same_list_syntax(machine, how):
    ids = "15b3:1013,1a03:*"
    if how == "option":
        args, env = ["--accel-id", ids], {}
    elif how == "repeated option":
        args, env = ["--accel-id", "15b3:1013", "--accel-id", "1a03:*"], {}
    else:
        args, env = [], {"ACCELCTL_ACCEL_IDS": ids}
    proc = cli("--sysfs-root", str(machine), *args, "list", "--all", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rules = {d["id"]: d["accelerator_rule"] for d in json.loads(proc.stdout)["devices"]}
    assert rules["0000:00:0b.0"] == "user:15b3:1013"
    assert rules["0000:00:02.0"] == "user:1a03:*"
    assert rules["0000:00:03.0"] is None  # Matrox is still a BMC's VGA


def test_class_matches(machine):
    topo = build_topology(machine, names=False, accel_ids=["class:0207"])
    assert topo.functions["0000:00:0b.0"].accelerator_rule == "user:class:0207"
    matcher = AcceleratorMatcher(["class:03"])
    assert matcher.rule_for(0x102B, 0x0522, 0x030000) == "user:class:03"
    assert AcceleratorMatcher(["class:030000"]).rule_for(0x1A03, 0x2000, 0x030000) == "user:class:030000"
    assert AcceleratorMatcher(["class:030000"]).rule_for(0x1A03, 0x2000, 0x030001) is None


@pytest.mark.parametrize("bad", ["1bcf", "zz:0001", "1bcf:1c:2", "class:0b4", "class:", "1bcf:00001"])
def test_a_malformed_id_is_a_usage_error_that_explains_the_syntax(machine, bad):
    with pytest.raises(InvalidAcceleratorIdError):
        AcceleratorMatcher([bad])
    proc = cli("--sysfs-root", str(machine), "--accel-id", f"15b3:1013,{bad}", "list")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "accelerator ids are VVVV:DDDD, VVVV:* or class:" in proc.stderr
    assert "name a device by BDF" not in proc.stderr  # not the device-name hint
    proc = cli("--sysfs-root", str(machine), "list", env={"ACCELCTL_ACCEL_IDS": bad})
    assert proc.returncode == 2 and "ACCELCTL_ACCEL_IDS" in proc.stderr


def test_a_ready_matcher_is_used_as_given(machine, monkeypatch):
    """build_topology(matcher=...) does not consult the environment again (the command built
    the matcher once, from the option and the environment)."""
    monkeypatch.setenv("ACCELCTL_ACCEL_IDS", "15b3:1013")
    topo = build_topology(machine, names=False, matcher=AcceleratorMatcher(["1a03:2000"]))
    assert topo.functions["0000:00:02.0"].is_accelerator
    assert not topo.functions["0000:00:0b.0"].is_accelerator


def test_the_documented_table_is_the_table_in_code():
    from accelctl.topology import accel

    doc = (Path(__file__).resolve().parents[2] / "docs" / "accelerators.md").read_text()
    keys = {f"`{r.key}`" for r in accel.CLASS_RULES}
    keys |= {f"`id:{v:04x}:{d:04x}`" for v, d in accel.KNOWN_IDS}
    keys |= {f"`gpu:{v:04x}`" for v in accel.GPU_VENDORS}
    assert {k for k in keys if k not in doc} == set()
    import re

    documented = set(re.findall(r"`((?:class|id|gpu):[0-9a-f:]+)`", doc)) - {"class:0207"}
    assert documented <= {k.strip("`") for k in keys}

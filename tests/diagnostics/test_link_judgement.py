"""One judge of links: the red DOWNTRAINED marks of `topology` and `list` and the LINK_DOWNTRAINED
findings of `diag` agree, on every bundled fixture, on the real machines and on a hand-written
tree where one end's capability is unknown (issue 11, item 2).

Everything is read from the commands' own output (text and JSON), not from library calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelctl.cli.app import app
from accelctl.sim.fixture import bundled_fixture_root, list_bundled_fixtures
from tests.discovery.minitree import MiniTree, config_bytes
from tests.real_machines import REAL, TREES


def _cli(root: Path, *args: str) -> str:
    r = CliRunner().invoke(app, ["--sysfs-root", str(root), *args], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert r.exit_code in (0, 1, 9), r.output  # 9: diag on a machine without accelerators
    return r.stdout


def _marked(text: str) -> set[str]:
    """BDFs on the lines the command marks DOWNTRAINED."""
    out = set()
    for line in text.splitlines():
        if "DOWNTRAINED" in line:
            bdfs = [w for w in line.replace("│", " ").split() if w.count(":") == 2 and "." in w]
            assert bdfs, line
            out.add(bdfs[0])
    return out


def _agreement(root: Path) -> tuple[set[str], set[str], set[str], dict]:
    """(marked in the tree, marked in `list --all`, the ends of the links diag calls
    downtrained, the diag document)."""
    nodes = json.loads(_cli(root, "topology", "--json"))["nodes"]
    parent = {n["id"]: n["parent"] for n in nodes}
    non_vf_children: dict[str, set[str]] = {}
    for n in nodes:
        if n["kind"] != "virtual_function" and n["parent"]:
            non_vf_children.setdefault(n["parent"], set()).add(n["id"])
    diag = json.loads(_cli(root, "diag", "--json"))
    ends: set[str] = set()
    for f in diag["findings"]:
        if f["code"] == "LINK_DOWNTRAINED":
            port = parent[f["subject"]]
            # A link's two ends: the port, and the device below it (all its functions share it).
            ends |= {port, *non_vf_children[port]}
    return _marked(_cli(root, "topology")), _marked(_cli(root, "list", "--all")), ends, diag


@pytest.mark.parametrize("name", list_bundled_fixtures())
def test_marks_and_findings_agree_on_every_bundled_fixture(name: str) -> None:
    tree, listed, ends, _ = _agreement(Path(bundled_fixture_root(name)))
    assert tree == ends
    assert listed == ends


def test_the_downtrained_fixture_is_marked_and_found() -> None:
    # The agreement above must not hold only because both sides say nothing.
    tree, listed, ends, _ = _agreement(Path(bundled_fixture_root("fault-downtrained")))
    assert ends and tree == ends == listed


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is not here")
@pytest.mark.parametrize("name", sorted(TREES))
def test_marks_and_findings_agree_on_the_real_machines(name: str, real_roots) -> None:
    tree, listed, ends, _ = _agreement(real_roots[name])
    assert tree == ends == listed


def _port_and_device(tmp_path: Path, device_attrs: dict[str, str]) -> MiniTree:
    """A root port trained at x8 of its x16, and a device below it whose own link files are
    `device_attrs`; both read as non-root (64 bytes of config: the status register says there
    is a capability list the reader cannot see), as on a kernel of today."""
    tree = MiniTree(tmp_path)
    tree.add("pci0000:00/0000:00:01.0", 0x8086, 0x2030, 0x060400,
             config=config_bytes(0x8086, 0x2030, 0x060400, bridge=(0, 1, 1), pcie_type=4)[:64], bridge=(0, 1, 1),
             attrs={"current_link_speed": "16.0 GT/s PCIe\n", "current_link_width": "8\n",
                    "max_link_speed": "16.0 GT/s PCIe\n", "max_link_width": "16\n"},
             driver="pcieport")
    tree.add("pci0000:00/0000:00:01.0/0000:01:00.0", 0x1d0f, 0x7364, 0x120000,
             config=config_bytes(0x1d0f, 0x7364, 0x120000, pcie_type=0)[:64], attrs=device_attrs)
    return tree


def test_a_port_below_its_own_width_with_the_device_capability_unknown(tmp_path: Path) -> None:
    # The device might be an x8 card in an x16 slot: nothing says the link is downtrained, so
    # no end is marked, no finding is raised, and diag says it could not check that link.
    _port_and_device(tmp_path, {"current_link_speed": "16.0 GT/s PCIe\n", "current_link_width": "8\n"})
    tree, listed, ends, diag = _agreement(tmp_path)
    assert tree == listed == ends == set()
    unjudged = [n for n in diag["not_checked"] if n["code"] == "LINK_DOWNTRAINED"]
    assert [n["subjects"] for n in unjudged] == [["0000:01:00.0"]]
    assert "capability" in unjudged[0]["reason"]


def test_the_same_link_with_both_capabilities_known_is_downtrained(tmp_path: Path) -> None:
    _port_and_device(tmp_path, {"current_link_speed": "16.0 GT/s PCIe\n", "current_link_width": "8\n",
                                "max_link_speed": "16.0 GT/s PCIe\n", "max_link_width": "16\n"})
    tree, listed, ends, diag = _agreement(tmp_path)
    assert tree == listed == ends == {"0000:00:01.0", "0000:01:00.0"}
    assert not [n for n in diag["not_checked"] if n["code"] == "LINK_DOWNTRAINED"]


def test_an_x8_card_in_an_x16_slot_is_not_downtrained(tmp_path: Path) -> None:
    _port_and_device(tmp_path, {"current_link_speed": "16.0 GT/s PCIe\n", "current_link_width": "8\n",
                                "max_link_speed": "16.0 GT/s PCIe\n", "max_link_width": "8\n"})
    tree, listed, ends, diag = _agreement(tmp_path)
    assert tree == listed == ends == set()
    assert not [n for n in diag["not_checked"] if n["code"] == "LINK_DOWNTRAINED"]

"""`accelctl list` and `accelctl topology` through typer's CliRunner, on bundled fixtures.

Expected values come from reading fixtures/two-socket.toml by hand: two sockets, each with a
PEX88096 switch carrying two MI300X cards (on-card switch 1002:14a0, 4 endpoints), an NVMe, a NIC
and an empty slot; one more NIC (2 functions) on socket 0.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from accelctl.cli.app import app

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "schema" / "topology.schema.json").read_text())
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_topology_json_follows_the_schema_and_the_spec():
    res = run("--fixture", "two-socket", "topology", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, SCHEMA)
    cards = doc["cards"]
    assert [c["endpoints"] for c in cards] == [
        ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"],
        ["0000:0b:00.0", "0000:0c:00.0", "0000:0d:00.0", "0000:0e:00.0"],
        ["0000:85:00.0", "0000:86:00.0", "0000:87:00.0", "0000:88:00.0"],
        ["0000:8b:00.0", "0000:8c:00.0", "0000:8d:00.0", "0000:8e:00.0"],
    ]
    assert [c["layout"] for c in cards] == ["switch"] * 4
    assert [c["numa_node"] for c in cards] == [0, 0, 1, 1]
    nodes = {n["id"]: n for n in doc["nodes"]}
    ids = [n["id"] for n in doc["nodes"]]
    assert ids[0] == "pci0000:00" and "pci0000:80" in ids
    assert nodes["0000:05:00.0"]["parent"] == "0000:04:00.0"
    assert nodes["0000:04:00.0"]["kind"] == "switch_downstream"
    assert nodes["0000:03:00.0"]["kind"] == "switch_upstream"
    assert nodes["0000:02:00.0"]["card"] is None  # the external switch is not on a card
    assert nodes["0000:03:00.0"]["card"] == 0  # the on-card switch is
    assert nodes["0000:0f:00.0"]["class_code"] == "010802" and nodes["0000:0f:00.0"]["card"] is None
    assert nodes["0000:0f:00.0"]["link"] == {"speed_gts": 16.0, "width": 4, "max_speed_gts": 16.0, "max_width": 4}
    assert nodes["0000:05:00.0"]["serial"] == "4d-49-33-30-00-00-00-00"
    assert nodes["0000:8e:00.0"]["serial"] == "4d-49-33-30-00-00-03-03"
    assert nodes["0000:02:04.0"]["link"]["width"] == 0  # the empty hot-plug slot
    assert res.stderr == ""


def test_list_json_is_accelerators_only_unless_all():
    doc = json.loads(run("--fixture", "two-socket", "list", "--json").stdout)
    assert len(doc["devices"]) == 16 and doc["schema_version"] == 1
    assert doc["devices"][4]["name"] == "card1.ep0" and doc["devices"][4]["id"] == "0000:0b:00.0"
    everything = json.loads(run("--fixture", "two-socket", "list", "--all", "--json").stdout)
    assert len(everything["devices"]) == 62
    assert [d["id"] for d in everything["devices"]] == sorted(d["id"] for d in everything["devices"])


def test_human_output_names_cards_and_links():
    res = run("--fixture", "two-socket", "list")
    assert res.exit_code == 0
    assert "card3.ep3" in res.stdout and "0000:8e:00.0" in res.stdout and "16GT/s x16" in res.stdout
    assert "\x1b[" not in res.stdout  # no colour when not a terminal
    tree = run("--fixture", "two-socket", "topology").stdout
    assert "card0 0000:03:00.0 switch_upstream" in tree
    assert "no link" in tree  # the empty slot


def test_graphml_and_dot_exports():
    import networkx as nx

    res = run("--fixture", "two-socket", "topology", "--format", "graphml")
    g = nx.parse_graphml(res.stdout)
    assert g.number_of_nodes() == 64 and g.number_of_edges() == 62  # two roots
    assert g.nodes["0000:05:00.0"]["card"] == 0
    ET.fromstring(res.stdout)
    dot = run("--fixture", "two-socket", "topology", "--format", "dot").stdout
    assert dot.startswith("digraph pci {") and '"0000:04:00.0" -> "0000:05:00.0";' in dot


def test_bad_fixture_and_conflicting_options_are_clear_errors(tmp_path):
    res = run("--fixture", "no-such", "list")
    assert res.exit_code in (3, 6) and "no-such" in res.stderr and "Traceback" not in res.stderr
    res = run("--fixture", "two-socket", "--sysfs-root", str(tmp_path), "list")
    assert res.exit_code == 2 and "not both" in res.stderr  # a usage error
    res = run("--sysfs-root", str(tmp_path), "topology", "--json")
    assert res.exit_code == 6 and res.stdout == ""
    assert json.loads(res.stderr)["error"]["type"] == "SysfsRootError"
    res = run("--fixture", "two-socket", "--accel-id", "zz", "list")
    assert res.exit_code == 2 and "accelerator ids" in res.stderr


def test_accel_id_counts_extra_devices(tmp_path):
    doc = json.loads(run("--fixture", "two-socket", "--accel-id", "144d:a80a", "list", "--json").stdout)
    assert {d["id"] for d in doc["devices"]} >= {"0000:0f:00.0", "0000:8f:00.0"}
    assert len(doc["cards"]) == 6


def test_list_honours_visible_devices(monkeypatch):
    monkeypatch.setenv("ACCELCTL_VISIBLE_DEVICES", "card1.ep2,card3")
    doc = json.loads(run("--fixture", "two-socket", "list", "--json").stdout)
    assert [d["name"] for d in doc["devices"]] == [
        "card1.ep2", "card3.ep0", "card3.ep1", "card3.ep2", "card3.ep3"]
    assert [c["index"] for c in doc["cards"]] == [1, 3]
    monkeypatch.setenv("ACCELCTL_VISIBLE_DEVICES", "card1.ep9")
    res = run("--fixture", "two-socket", "list", "--json")
    assert res.exit_code == 3 and res.stdout == ""

"""CLI (exit codes, JSON), manifest errors, metrics exposition, determinism."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from accelctl.cli.app import app
from accelctl.diagnostics import parse_manifest, run_diagnostics
from accelctl.errors import ManifestError
from accelctl.topology import build_topology
from tests.diagnostics.specs import build, two_cards

runner = CliRunner()


def _run(root: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--sysfs-root", str(root), *args])


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    build(two_cards(), root)
    return root


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("narrow")
    build(two_cards("trained = {width = 8}\naer = {correctable = {RxErr = 7}}"), root)
    return root


def test_diag_json_clean_exits_0(clean: Path) -> None:
    r = _run(clean, "diag", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 2 and doc["verdict"] == "pass"
    assert doc["findings"] == [] and doc["summary"] == {"error": 0, "warning": 0, "info": 0}
    assert doc["checked"]["accelerator_endpoints"] == 2


def test_diag_errors_exit_1_with_sorted_findings(narrow: Path) -> None:
    r = _run(narrow, "diag", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [(f["code"], f["severity"], f["subject"]) for f in doc["findings"]] == [
        ("AER_ERRORS", "warning", "0000:02:00.0"),
        ("LINK_DOWNTRAINED", "error", "0000:02:00.0"),
    ]
    assert doc["summary"] == {"error": 1, "warning": 1, "info": 0}
    # level 1 skips AER; the width drop still fails the run
    r1 = _run(narrow, "diag", "--json", "--level", "1")
    assert r1.exit_code == 1 and [f["code"] for f in json.loads(r1.stdout)["findings"]] == ["LINK_DOWNTRAINED"]


def test_diag_table_for_people(narrow: Path) -> None:
    r = _run(narrow, "diag")
    assert r.exit_code == 1
    assert "LINK_DOWNTRAINED" in r.stdout and "FAIL" in r.stdout


def test_diag_manifest_expecting_more_cards_fails(clean: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.toml"
    m.write_text("[expect]\ncards = 8\nendpoints_per_card = 4\nmin_link_speed_gts = 16.0\nmin_link_width = 16\n")
    r = _run(clean, "diag", "--json", "--manifest", str(m))
    assert r.exit_code == 1
    found = [(f["code"], f["subject"]) for f in json.loads(r.stdout)["findings"]]
    assert found == [("CARD_COUNT_MISMATCH", "machine"), ("ENDPOINT_MISSING", "0000:01:00.0"),
                     ("ENDPOINT_MISSING", "0000:02:00.0")]


def test_diag_bad_manifest_exits_6_naming_the_key(clean: Path, tmp_path: Path) -> None:
    m = tmp_path / "bad.toml"
    m.write_text("[expect]\ncards = 8\nendpoint_per_card = 4\n")
    r = _run(clean, "diag", "--manifest", str(m))
    assert r.exit_code == 6
    assert "bad.toml:3" in r.stderr and "endpoint_per_card" in r.stderr


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("[expect]\ncards = -1\n", 2, "expect.cards", "at least 0"),
        ("[expect]\ncards = \"8\"\n", 2, "expect.cards", "integer"),
        ("[expect]\nmin_link_width = 3\n", 2, "expect.min_link_width", "one of"),
        ("[expect]\nmin_link_speed_gts = true\n", 2, "expect.min_link_speed_gts", "number"),
        ("[expected]\ncards = 1\n", 1, "expected", "unknown"),
        ("[[card]]\nendpoints = 4\n", 1, "card", "exactly one of port"),
        ("[expect]\ncards = 1\n\n[[card]]\nport = \"00:01.1\"\n[[card]]\nport = \"nope\"\n", 7,
         "card[1].port", "port address"),
        ("[[model]]\nid = \"1002:74a1\"\ncards = 1.5\n", 3, "model[0].cards", "integer"),
        ("[expect\ncards = 1\n", 1, None, "not valid TOML"),
    ],
)
def test_manifest_errors(text: str, line: int, key: str | None, words: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, path="m.toml")
    assert err.value.path == "m.toml" and err.value.line == line and err.value.key == key
    assert words in err.value.problem


def test_richer_manifest_merges_most_specific_first() -> None:
    m = parse_manifest(
        '[expect]\nendpoints_per_card = 4\nmin_link_width = 16\n'
        '[[model]]\nid = "1E52:401E"\nendpoints_per_card = 1\nmin_link_speed_gts = 16\n'
        '[[card]]\nport = "00:01.1"\nmin_link_width = 8\n'
    )
    entry = m.entry_for("0000:00:01.1", None)
    assert entry is not None
    assert m.endpoints_for(0x1E52, 0x401E, entry) == 1
    assert m.endpoints_for(0x10DE, 0x2330, None) == 4
    floor = m.link_for(0x1E52, 0x401E, entry)
    assert (floor.speed_gts, floor.width) == (16.0, 8)


def test_matrix_cli(clean: Path) -> None:
    r = _run(clean, "topology", "matrix", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    # two cards on two root ports of one host bridge: PHB, peer-to-peer through the root
    # complex (the builder's AMD Genoa, a Zen part: Linux p2pdma allows it)
    assert doc["matrix"] == [["X", "PHB"], ["PHB", "X"]]
    assert doc["p2p"] == [[True, True], [True, True]]
    assert doc["p2p_route"] == [["fabric", "host_bridge"], ["host_bridge", "fabric"]]
    assert [e["name"] for e in doc["endpoints"]] == ["card0.ep0", "card1.ep0"]
    assert _run(clean, "topology", "matrix").exit_code == 0


def test_metrics_parse_and_atomic_output(narrow: Path, tmp_path: Path) -> None:
    out = tmp_path / "accelctl.prom"
    r = _run(narrow, "metrics", "--output", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    text = out.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name != "accelctl.prom"]  # no temp file left
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["accelctl_cards"].samples[0].value == 2
    width = {s.labels["bdf"]: s for s in families["accelctl_link_width"].samples}
    assert width["0000:02:00.0"].value == 8 and width["0000:01:00.0"].value == 16
    assert width["0000:02:00.0"].labels == {"bdf": "0000:02:00.0", "card": "1", "endpoint": "0",
                                            "global_id": "1", "serial": "", "model": "1e52:401e"}
    aer = families.get("accelctl_aer_errors") or families["accelctl_aer_errors_total"]
    assert aer.type == "counter"
    rx = [s for s in aer.samples if s.labels["bdf"] == "0000:02:00.0"
          and s.labels["error"] == "RxErr"]
    assert [s.value for s in rx] == [7]
    findings = {(s.labels["code"], s.labels["severity"]): s.value for s in families["accelctl_findings"].samples}
    assert findings[("LINK_DOWNTRAINED", "error")] == 1
    assert findings[("AER_ERRORS", "warning")] == 1
    assert findings[("DEVICE_INACCESSIBLE", "error")] == 0
    # two accelerators on two root ports of the builder's AMD Genoa root complex (Zen): P2P
    # through the root complex works; every state has a sample
    pairs = {s.labels["state"]: s.value for s in families["accelctl_p2p_pairs"].samples}
    assert pairs == {"true": 1, "false": 0, "unknown": 0}
    assert _run(narrow, "metrics").stdout == text  # stdout carries the same document


def test_same_hardware_listed_in_another_order_gives_the_same_findings(
    narrow: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_diagnostics(build_topology(narrow)).to_dict()
    real_listdir = os.listdir
    real_scandir = os.scandir

    def reversed_listdir(path="."):  # type: ignore[no-untyped-def]
        return list(reversed(real_listdir(path)))

    monkeypatch.setattr(os, "listdir", reversed_listdir)
    assert real_scandir is os.scandir
    again = run_diagnostics(build_topology(narrow)).to_dict()
    assert again == first


def test_item_order_in_the_spec_does_not_change_findings(tmp_path: Path) -> None:
    # The same hardware described with the cards in the other order: directories are created
    # in another order, addresses and findings must not move.
    spec = two_cards("trained = {width = 8}")
    head, c0, c1 = spec.split("[[card]]")
    swapped = head + "[[card]]" + c1 + "[[card]]" + c0
    a = run_diagnostics(build(spec, tmp_path / "a")).to_dict()
    b = run_diagnostics(build(swapped, tmp_path / "b")).to_dict()
    a.pop("warnings"), b.pop("warnings")
    assert a == b

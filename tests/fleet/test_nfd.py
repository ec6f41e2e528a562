"""NFD feature files: read back the way NFD's local source reads them (its published format:
``name[=value]`` lines, ``# +expiry-time=<RFC3339>``, hidden files ignored, 64 KiB at most) and
checked against Kubernetes' label rules, which NFD applies."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from accelctl.fleet import build_inventory
from accelctl.fleet.nfd import LABEL_NS, feature_file, nfd_labels
from accelctl.sim.fixture import build_fixture, list_bundled_fixtures, parse_spec
from accelctl.topology import build_topology
from tests.fleet.conftest import cli

NS = LABEL_NS + "/"
# Kubernetes' own rules (IsQualifiedName, IsValidLabelValue), written out from its docs.
K8S_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def read_like_nfd(text: str, now: datetime) -> dict[str, str]:
    """NFD's local-source reading of one file: directives start '# +', other '#' lines are
    comments; lines after an expiry-time in the past are dropped; 'name' alone means true."""
    labels: dict[str, str] = {}
    expires = now
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# +"):
                key, _, value = line[3:].partition("=")
                assert key == "expiry-time", f"NFD knows no directive {key!r}"
                expires = datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            continue
        if expires < now:
            continue
        name, sep, value = line.partition("=")
        labels[name] = value if sep else "true"
    return labels


def assert_nfd_accepts(labels: dict[str, str]) -> None:
    for name, value in labels.items():
        prefix, _, base = name.rpartition("/")
        assert DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253, name
        assert prefix.endswith(".feature.node.kubernetes.io"), name  # allowed without extra-label-ns
        assert len(base) <= 63 and K8S_NAME.match(base), name
        assert len(value) <= 63 and (value == "" or K8S_NAME.match(value)), (name, value)


def write_file(root: Path, out: Path, *more: str) -> str:
    r = cli("--sysfs-root", str(root), "k8s", "nfd", "--output", str(out), *more)
    assert r.exit_code == 0, r.output
    return out.read_text()


@pytest.mark.parametrize("name", list_bundled_fixtures())
def test_every_fixture_writes_a_file_nfd_accepts(name, fixture_root, tmp_path):
    text = write_file(fixture_root(name), tmp_path / "accelctl")
    assert len(text.encode()) <= 65536
    labels = read_like_nfd(text, datetime.now(timezone.utc))
    assert labels, "the file expired at once or holds no label"
    assert_nfd_accepts(labels)
    assert not [p for p in tmp_path.iterdir() if p.name != "accelctl"], "a temp file was left"


def test_two_socket_labels_say_what_the_spec_built(fixture_root, tmp_path):
    labels = read_like_nfd(write_file(fixture_root("two-socket"), tmp_path / "f"), datetime.now(timezone.utc))
    assert labels == {
        NS + "present": "true",
        NS + "accelerators": "16",
        NS + "cards": "4",
        NS + "healthy": "16",
        NS + "endpoints-per-card": "4",
        NS + "model": "1002_74a1",
        NS + "pci-1002-74a1.count": "16",
        # the two sockets' cards meet only through the root complexes: AMD Genoa (Zen), where
        # Linux p2pdma allows P2P (docs/matrix.md)
        NS + "p2p-all-pairs": "true",
        NS + "link-downtrained": "false",
        NS + "numa-nodes": "0-1",
    }


def test_downtrained_and_unhealthy_show(fixture_root, tmp_path):
    labels = read_like_nfd(write_file(fixture_root("fault-downtrained"), tmp_path / "f"), datetime.now(timezone.utc))
    assert labels[NS + "link-downtrained"] == "true"
    assert labels[NS + "healthy"] == "1" and labels[NS + "accelerators"] == "3"


def test_expiry_drops_the_labels_once_past(fixture_root, tmp_path):
    text = write_file(fixture_root("one-card"), tmp_path / "f", "--expiry", "60")
    (line,) = [x for x in text.splitlines() if x.startswith("# +expiry-time=")]
    at = datetime.strptime(line.split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert read_like_nfd(text, at - timedelta(seconds=1))  # still there just before
    assert read_like_nfd(text, at + timedelta(seconds=1)) == {}
    never = write_file(fixture_root("one-card"), tmp_path / "g", "--expiry", "0")
    assert "+expiry-time" not in never


def _one_card_of_four(where: Path):  # type: ignore[no-untyped-def]
    spec = """
[machine]
name = "p2p"
acs = []
[[host_bridge]]
name = "s0"
bus = 0
[[root_port]]
name = "rp0"
parent = "s0"
at = "01.1"
[[card]]
name = "c0"
parent = "rp0"
id = "1002:74a1"
layout = "switch"
endpoints = 4
"""
    build_fixture(parse_spec(spec), where)
    return build_topology(where)


def test_p2p_all_pairs_is_true_only_when_every_answer_is_yes(tmp_path):
    inv = build_inventory(_one_card_of_four(tmp_path / "p2p"))
    assert nfd_labels(inv)[NS + "p2p-all-pairs"] == "true"  # four endpoints of one card, ACS off
    # an answer that is not a clear yes (the matrix's "unknown") counts as no
    inv.matrix.p2p[0][1] = None  # type: ignore[call-overload]
    assert nfd_labels(inv)[NS + "p2p-all-pairs"] == "false"
    inv.matrix.p2p[0][1] = False
    assert nfd_labels(inv)[NS + "p2p-all-pairs"] == "false"


def test_a_label_breaking_the_rules_is_refused_not_written():
    with pytest.raises(ValueError):
        feature_file({NS + "bad name": "x"})
    with pytest.raises(ValueError):
        feature_file({NS + "ok": "-starts-badly"})
    with pytest.raises(ValueError):
        feature_file({"other.example.com/x": "1"})


def test_unwritable_output_is_exit_6(fixture_root, tmp_path):
    r = cli("--sysfs-root", str(fixture_root("one-card")), "k8s", "nfd", "--output",
            str(tmp_path / "no" / "such" / "dir" / "f"))
    assert r.exit_code == 6 and "cannot write" in r.stderr

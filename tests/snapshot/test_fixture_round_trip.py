"""Every bundled fixture survives snapshot + replay with an identical `topology --json`
(and identical `diag --json` findings once the diag command exists)."""

from __future__ import annotations

import json

import pytest

from accelctl.sim.fixture import list_bundled_fixtures
from tests.snapshot._cli import run, topology_json

FIXTURES = list_bundled_fixtures()


# scale (2000+ functions, 82k entries) costs ~25 s here, mostly file creation on this filesystem
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "scale" else n for n in FIXTURES]
)
def test_round_trip(tmp_path, name):
    out = tmp_path / f"{name}.tar.gz"
    # generous timeouts: a safety net against a hang, never a speed claim (a busy CI box is slow)
    r = run("--fixture", name, "snapshot", str(out), timeout=900)
    assert r.returncode == 0, r.stderr
    assert topology_json("--fixture", name, timeout=900) == topology_json("--sysfs-root", str(out), timeout=900)
    diag_tree = run("--fixture", name, "diag", "--json", timeout=900)
    if diag_tree.returncode == 2 and "No such command" in diag_tree.stderr:
        return  # diagnostics not registered yet
    diag_snap = run("--sysfs-root", str(out), "diag", "--json", timeout=900)
    assert diag_tree.returncode == diag_snap.returncode, diag_snap.stderr

    def findings(doc: dict) -> object:
        doc.pop("sysfs_root", None)
        return doc.get("findings", doc)

    assert findings(json.loads(diag_tree.stdout)) == findings(json.loads(diag_snap.stdout))


def test_there_are_fixtures_to_round_trip():
    assert FIXTURES, "no bundled fixtures found"

"""The bundled fault fixtures (fixtures/fault-*.toml) against what their specs say is broken.
Subjects are worked out from each spec's bus numbering (comments below)."""

from __future__ import annotations

import pytest

from accelctl.diagnostics import parse_manifest, run_diagnostics
from accelctl.sim.fixture import bundled_fixture_root
from accelctl.topology import build_topology


def _codes(name: str, manifest: str | None = None, level: int = 3) -> set[tuple[str, str, str]]:
    topo = build_topology(bundled_fixture_root(name))
    m = parse_manifest(manifest, path=f"{name}.toml") if manifest else None
    return {(f.code, f.severity.value, f.subject) for f in run_diagnostics(topo, manifest=m, level=level).findings}


@pytest.mark.parametrize("name", ["one-card", "two-socket", "flat-vmd"])
def test_healthy_fixtures_have_no_problem_findings(name: str) -> None:
    assert {c for c in _codes(name) if c[1] != "info"} == set()


def test_missing_endpoint_and_missing_card_with_manifest() -> None:
    # rp0 = 00:01.1 -> card0's switch USP 01:00.0, DSPs 02:00.0..02:03.0, endpoint 2 missing;
    # rp1 = 00:02.1 is empty although the manifest puts card1 there.
    manifest = '[expect]\ncards = 2\nendpoints_per_card = 4\n[[card]]\nport = "0000:00:02.1"\n'
    assert _codes("fault-missing-endpoint", manifest) == {
        ("CARD_COUNT_MISMATCH", "error", "machine"),
        ("ENDPOINT_MISSING", "error", "0000:01:00.0"),
        ("LINK_DOWN", "error", "0000:00:02.1"),
    }


@pytest.mark.parametrize(
    ("name", "code", "severity"),
    [
        ("fault-acs-blocking", "ACS_P2P_BLOCKED", "warning"),
        ("fault-aer", "AER_ERRORS", "error"),
        ("fault-bar-unassigned", "BAR_UNASSIGNED", "error"),
        ("fault-bus-exhausted", "BUS_NUMBERS_EXHAUSTED", "error"),
        ("fault-downtrained", "LINK_DOWNTRAINED", "error"),
        ("fault-off-bus", "DEVICE_INACCESSIBLE", "error"),
        ("fault-nonroot", "LIMITED_VISIBILITY", "info"),
    ],
)
def test_each_fault_fixture_triggers_its_code(name: str, code: str, severity: str) -> None:
    assert code in {c for c, s, _ in _codes(name) if s == severity}
    for healthy in ("one-card", "two-socket"):
        assert code not in {c for c, _, _ in _codes(healthy)}

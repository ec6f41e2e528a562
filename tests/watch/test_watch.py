"""`watch --json` in a real subprocess while the test mutates a fixture tree. No sleeps: the test
mutates once the command says it is watching (its first reading is taken by then), and the
events are read until the count is reached."""

from __future__ import annotations

import json
import subprocess
import sys

from accelctl.platform import fixture_mutate
from accelctl.sim.fixture import build_fixture, bundled_spec_path
from accelctl.sysfs import SysfsRoot
from tests._wait import HANG_GUARD_S


def _watch(tree: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelctl", "--sysfs-root", tree, "watch", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("accelctl: watching "), first + proc.stderr.read()
    return proc


def _events(proc: subprocess.Popen) -> list[dict]:
    try:
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_watch_reports_link_aer_and_removal(tmp_path):
    tree = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    proc = _watch(tree, "--interval", "0.1", "--count", "4")
    root = SysfsRoot(tree)
    fixture_mutate.set_link(root, "0000:06:00.0", width=4)
    fixture_mutate.bump_aer(root, "0000:07:00.0", "RxErr", by=50)
    fixture_mutate.remove_function(root, "0000:08:00.0")
    events = _events(proc)
    # both ends of the link retrain: the card's downstream port and the endpoint (in either
    # order: set_link writes the endpoint first, and a reading may fall between the two writes);
    # then the counter and the removal, which come after both
    got = [(e["action"], e["bdf"]) for e in events]
    assert sorted(got[:2]) == [("link", "0000:04:01.0"), ("link", "0000:06:00.0")]
    assert got[2:] == [("aer", "0000:07:00.0"), ("remove", "0000:08:00.0")]
    link = next(e for e in events if e["bdf"] == "0000:06:00.0")
    aer = events[2]
    assert link["before"]["width"] == 16 and link["after"]["width"] == 4
    assert aer["severity"] == "correctable" and aer["delta"] == 50 and aer["rate_per_s"] > 0
    assert all(e["schema_version"] == 1 for e in events)


def test_watch_filters_to_accelerators_unless_all(tmp_path):
    tree = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    root = SysfsRoot(tree)
    # a root port (no card) changes first, an endpoint after it: the first event reported is the
    # endpoint's unless --all, whether the two land in one reading or two
    got = {}
    for args in ((), ("--all",)):
        proc = _watch(tree, "--interval", "0.1", "--count", "1", *args)
        fixture_mutate.bump_aer(root, "0000:00:01.1", "RxErr", by=5)
        fixture_mutate.bump_aer(root, "0000:07:00.0", "RxErr", by=5)
        got[args] = [(e["action"], e["bdf"]) for e in _events(proc)]
    assert got[()] == [("aer", "0000:07:00.0")]
    assert got[("--all",)] == [("aer", "0000:00:01.1")]


def test_duration_ends_a_quiet_watch(tmp_path):
    tree = str(build_fixture(bundled_spec_path("one-card"), tmp_path / "sys"))
    proc = _watch(tree, "--duration", "0.3")
    assert _events(proc) == []


def test_the_library_iterator_sees_what_happens_after_it_is_made(tmp_path):
    from accelctl.machine import open_machine
    from accelctl.watch import watch_events

    tree = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    stream = watch_events(open_machine(sysfs_root=tree), count=2)
    # two-socket.toml: 4 cards x (on-card switch upstream port + 4 downstream ports + 4 endpoints)
    assert (stream.plan.source, stream.plan.interval_s, stream.plan.functions) == ("poll", 0.2, 36)
    # after the call, before the first next(): the first reading was taken already
    fixture_mutate.remove_function(SysfsRoot(tree), "0000:08:00.0")
    fixture_mutate.remove_function(SysfsRoot(tree), "0000:0e:00.0")
    assert [(e.action, e.bdf, e.source) for e in stream] == [
        ("remove", "0000:08:00.0", "poll"), ("remove", "0000:0e:00.0", "poll")]

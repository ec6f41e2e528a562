"""The shared bundled-fixture cache: every command on a fixture reads the one tree built there,
so nothing may change it behind that command's back, and nothing a killed build leaves there
may stay for ever. Real CLI processes and a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.snapshot._cli import run

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    # the cache is what is attacked here: one per test, and a private simulator runtime dir
    monkeypatch.setenv("ACCELCTL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    yield tmp_path / "cache" / "fixtures"
    for root in (tmp_path / "cache" / "fixtures").glob("two-socket-*"):
        from accelctl.sim import service

        service.stop(str(root))


def test_inject_through_the_cache_path_is_refused(own_cache):
    """`--fixture two-socket reset --inject` was refused, but the same tree named by its path
    (`--sysfs-root ~/.cache/accelctl/fixtures/two-socket-HASH`) took the fault: every later
    `--fixture two-socket diag` then failed (exit 1, link x16 -> x8)."""
    before = run("--fixture", "two-socket", "diag", "--json")
    assert before.returncode == 0, before.stderr
    (shared,) = own_cache.glob("two-socket-*")
    r = run("--sysfs-root", str(shared), "reset", "card0.ep1", "--level", "flr", "--yes", "--timeout", "30",
            "--inject", "narrow-link")
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert "shared fixture cache" in r.stderr and "fixture build" in r.stderr
    after = run("--fixture", "two-socket", "diag", "--json")
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["findings"] == json.loads(before.stdout)["findings"] == []


_STALL_MID_BUILD = """
import sys
from accelctl.sim.fixture import build as builder, bundled
real_build = builder.build_fixture
def build(spec, out, **options):
    real_build(spec, out, **options)  # every file written, not yet renamed into place
    print(out, flush=True)
    sys.stdin.read()  # stalled, until killed
builder.build_fixture = build
bundled.bundled_fixture_root(sys.argv[1])
"""


def test_a_fixture_build_killed_half_way_is_removed_on_next_use(own_cache):
    """A build killed by SIGKILL left its `.two-socket-*` directory (a whole tree, ~1 MB; 7 MB
    for scale) in the cache for good: nothing ever removed it."""
    builder = subprocess.Popen([sys.executable, "-c", _STALL_MID_BUILD, "two-socket"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    try:
        leftover = Path(builder.stdout.readline().strip())
        assert leftover.name.startswith(".two-socket-") and (leftover / "bus" / "pci" / "devices").is_dir()
        # another command while the build runs: the build in progress is not a leftover
        assert run("--fixture", "one-card", "list").returncode == 0
        assert leftover.is_dir(), "a build in progress must not be removed"
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    assert leftover.is_dir()  # SIGKILL leaves it behind...
    assert run("--fixture", "one-card", "list").returncode == 0  # a use that builds nothing
    assert not leftover.exists()  # ...and the next use removes it
    assert [p.name for p in own_cache.iterdir() if p.name.startswith(".")] == []

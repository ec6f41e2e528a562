"""Seconds of work say so on a terminal's stderr, and nowhere else (issue 12).

Building a fixture the first time, capturing a snapshot, unpacking one the first time and a
benchmark each take seconds (the scale fixture: 5-15 s) that used to pass in silence. A person
at a terminal is told, one line on stderr; a pipe, a script and --json get nothing extra.
Run through a real pseudo-terminal, with a cache of its own so the work really happens.
"""

from __future__ import annotations

import pytest

from tests.cli._run import accelctl, at_terminal


@pytest.fixture
def fresh_cache(tmp_path):
    return {"ACCELCTL_CACHE_DIR": str(tmp_path / "cache")}


def test_building_a_fixture_is_announced_at_a_terminal(fresh_cache):
    code, terminal, stdout = at_terminal("--fixture", "two-socket", "list", stream="stderr", env=fresh_cache)
    assert code == 0 and "card0" in stdout
    assert terminal.count("\n") == 1 and "building fixture two-socket" in terminal
    assert "PCI functions" in terminal
    code, terminal, _ = at_terminal("--fixture", "two-socket", "list", stream="stderr", env=fresh_cache)
    assert code == 0 and terminal == ""  # built once: nothing to announce the second time


def test_nothing_extra_in_a_pipe_or_with_json(fresh_cache):
    r = accelctl("--fixture", "two-socket", "list", env=fresh_cache)
    assert r.returncode == 0 and r.stderr == ""
    other_cache = {"ACCELCTL_CACHE_DIR": fresh_cache["ACCELCTL_CACHE_DIR"] + "-json"}
    code, terminal, stdout = at_terminal("--fixture", "two-socket", "list", "--json", stream="stderr",
                                         env=other_cache)
    assert code == 0 and stdout.startswith("{") and terminal == ""


def test_snapshot_capture_and_first_replay_are_announced(tmp_path, fresh_cache):
    assert accelctl("--fixture", "one-card", "list", env=fresh_cache).returncode == 0  # built, silently
    archive = tmp_path / "one.tar.gz"
    code, terminal, stdout = at_terminal("--fixture", "one-card", "snapshot", str(archive), stream="stderr",
                                         env=fresh_cache)
    assert code == 0 and stdout.startswith("wrote ")
    assert terminal.startswith("accelctl: capturing ") and str(archive) in terminal
    code, terminal, _ = at_terminal("--sysfs-root", str(archive), "list", stream="stderr", env=fresh_cache)
    assert code == 0 and "unpacking snapshot one.tar.gz" in terminal
    code, terminal, _ = at_terminal("--sysfs-root", str(archive), "list", stream="stderr", env=fresh_cache)
    assert code == 0 and terminal == ""  # unpacked once, from the cache after

    piped = tmp_path / "piped.tar.gz"
    r = accelctl("--fixture", "one-card", "snapshot", str(piped), env=fresh_cache)
    assert r.returncode == 0 and r.stderr == ""
    r = accelctl("--sysfs-root", str(piped), "list", env=fresh_cache)
    assert r.returncode == 0 and r.stderr == ""


def test_bench_is_announced_at_a_terminal_only(fresh_cache):
    short = ("--seconds", "0.05", "--iterations", "50")
    code, terminal, stdout = at_terminal("--fixture", "one-card", "bench", *short, stream="stderr", env=fresh_cache)
    assert code in (0, 1) and "targets:" in stdout  # 1: a target missed on a busy machine
    assert "measuring " in terminal and "Traceback" not in terminal
    r = accelctl("--fixture", "one-card", "bench", *short, env=fresh_cache)
    assert r.returncode in (0, 1) and r.stderr == ""

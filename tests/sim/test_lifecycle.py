"""One simulator lifecycle, through the CLI as a user runs it (real processes, a private runtime
directory per test): `sim status` lists every running simulator, a second `sim serve` says which
one runs and its hint's command works, `sim serve` adopts a daemon a command started, `sim stop
--all` stops every background one and leaves embedded ones to their programs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from accelctl.sim import service


def run(env, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accelctl", *args], env=env, capture_output=True,
                          input=stdin, timeout=120)


def status(env, *args: str) -> tuple[int, dict]:
    r = run(env, "sim", "status", "--json", *args)
    return r.returncode, json.loads(r.stdout)


def test_status_lists_every_running_simulator(env):
    code, doc = status(env)
    assert code == 1 and doc["simulators"] == []
    for fixture in ("one-card", "two-socket"):
        assert run(env, "--fixture", fixture, "admin", "identify", "card0.ep0").returncode == 0
    # Named or not, every simulator is listed (was: only the one of the --fixture given).
    for args in ((), ("--fixture", "one-card")):
        code, doc = status(env, *args)
        assert code == 0
        by_fixture = {s["fixture"]: s for s in doc["simulators"]}
        assert sorted(by_fixture) == ["one-card", "two-socket"]
    listing = json.loads(run(env, "--fixture", "two-socket", "list", "--json").stdout)
    endpoints = sorted(d["id"] for d in listing["devices"])
    two = by_fixture["two-socket"]
    assert sorted(two["sockets"]) == endpoints
    assert two["started_by"] == "on-demand" and two["idle_exit_s"] == 120 and two["mode"] == "process"
    assert doc["machine"]["fixture"] == "one-card" and doc["machine"]["running"] is True
    assert doc["schema_version"] == 2  # the list replaced one fixture's status object
    text = run(env, "sim", "status").stdout.decode()
    assert "one-card: pid" in text and "two-socket: pid" in text and "exits after 120 s" in text


def test_status_of_a_fixture_not_running_exits_1_and_lists_the_others(env):
    assert run(env, "--fixture", "one-card", "admin", "identify", "card0.ep0").returncode == 0
    code, doc = status(env, "--fixture", "two-socket")
    assert code == 1
    assert doc["machine"]["running"] is False
    assert [s["fixture"] for s in doc["simulators"]] == ["one-card"]


def test_a_second_serve_names_the_running_one_and_its_hint_stops_it(env):
    first = run(env, "sim", "serve", "--fixture", "one-card")
    assert first.returncode == 0, first.stderr
    second = run(env, "sim", "serve", "--fixture", "one-card", "--json")
    assert second.returncode == 5
    error = json.loads(second.stderr)["error"]
    assert error["type"] == "SimulatorRunningError"
    assert "started by 'accelctl sim serve'" in error["message"]
    hinted = error["hint"].split(": ", 1)[1]
    assert hinted == "accelctl sim stop --fixture one-card"
    # The hint's command, run as given (was: "'accelctl sim stop' first", which then said "not running").
    stopped = run(env, *shlex.split(hinted)[1:])
    assert stopped.returncode == 0 and stopped.stdout == b"stopped\n", stopped.stderr
    assert status(env, "--fixture", "one-card")[0] == 1


def test_serve_adopts_the_daemon_a_command_started(env):
    assert run(env, "--fixture", "one-card", "io", "write", "card0.ep0", stdin=b"kept").returncode == 0
    _, before = status(env, "--fixture", "one-card")
    assert before["machine"]["started_by"] == "on-demand"
    served = run(env, "sim", "serve", "--fixture", "one-card", "--json")
    assert served.returncode == 0, served.stderr
    [after] = json.loads(served.stdout)["simulators"]
    assert after["pid"] == before["machine"]["pid"]  # the same daemon, its clients and state kept
    assert after["started_by"] == "serve" and after["idle_exit_s"] is None
    assert status(env, "--fixture", "one-card")[1]["machine"]["started_by"] == "serve"
    # Faults are given to a daemon when it starts: asking for them is refused, not ignored.
    faulted = run(env, "sim", "serve", "--fixture", "one-card", "--fault", '{"kind":"drop_cqe"}')
    assert faulted.returncode == 5 and b"accelctl sim stop --fixture one-card" in faulted.stderr


def test_an_adopted_daemon_stops_watching_for_idleness():
    idle = service._IdleExit(None)

    class NeverStopping:
        _stopping = False
        endpoints: dict = {}

        def stop(self):  # pragma: no cover - the test fails if it is called
            raise AssertionError("an adopted daemon was stopped for idleness")

    service._exit_when_idle(NeverStopping(), idle)  # returns at once instead of counting down


def test_stop_all_stops_background_daemons_and_leaves_embedded_ones(env, short_dir):
    from accelctl.machine import open_machine

    assert run(env, "--fixture", "two-socket", "admin", "identify", "card0.ep0").returncode == 0
    machine = open_machine(fixture="one-card")
    embedded = service.start_embedded(machine.root.path, machine.platform.served_endpoints())
    try:
        serve = run(env, "sim", "serve", "--fixture", "one-card")
        assert serve.returncode == 5
        assert f"embedded in process {os.getpid()}".encode() in serve.stderr
        assert f"it ends with process {os.getpid()}".encode() in serve.stderr
        stop_one = run(env, "sim", "stop", "--fixture", "one-card")
        assert stop_one.returncode == 5 and b"embedded" in stop_one.stderr
        stop_all = run(env, "sim", "stop", "--all", "--json")
        assert stop_all.returncode == 0, stop_all.stderr
        doc = json.loads(stop_all.stdout)
        assert [s["fixture"] for s in doc["left"]] == ["one-card"]
        assert len(doc["stopped"]) == 1 and "two-socket" in doc["stopped"][0]
        assert [s["fixture"] for s in status(env)[1]["simulators"]] == ["one-card"]
    finally:
        embedded.stop()
    assert status(env)[0] == 1


def test_stop_without_a_fixture_or_all_is_a_usage_error(env):
    r = run(env, "sim", "stop")
    assert r.returncode == 2 and b"--all" in r.stderr

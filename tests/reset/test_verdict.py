"""A reset says success only when it succeeded (issue 14), and says what happened where a script
can read it (issue 12). Real CLI processes against a private fixture copy and its simulator."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from accelctl.sim.fixture import build_fixture, bundled_spec_path
from tests.snapshot._cli import run


@pytest.fixture
def tree(tmp_path, monkeypatch):
    # a private copy (resets mutate it) and a private simulator runtime dir (firmware state)
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    root = str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))
    yield root
    from accelctl.sim import service

    service.stop(root)


def reset_json(tree, *args, timeout=120):
    r = run("--sysfs-root", tree, "reset", *args, "--yes", "--json", "--timeout", "30", timeout=timeout)
    return r, (json.loads(r.stdout) if r.stdout.strip() else None)


def serve_with_faults(tree, *faults):
    args = [a for f in faults for a in ("--fault", json.dumps(f))]
    r = run("--sysfs-root", tree, "sim", "serve", *args)
    assert r.returncode == 0, r.stderr


def steps_named(result, name):
    return [s for s in result["timeline"] if s["name"] == name]


# --- a failed step fails the reset -------------------------------------------------------------


@pytest.mark.parametrize(("device", "level", "resets"), [("card1.ep2", "flr", 1), ("card1", "card", 4)])
def test_a_reset_the_device_failed_exits_5_not_ok(tree, device, level, resets):
    serve_with_faults(tree, {"kind": "reset_fail", "count": 0})
    r, doc = reset_json(tree, device, "--level", level)
    assert r.returncode == 5, (r.returncode, r.stderr)
    res = doc["result"]
    assert res["ok"] is False and res["reset_done"] is False
    failed = steps_named(res, "sim_device_reset")
    assert len(failed) == resets and all(s["status"] == "failed" and "(injected)" in s["detail"] for s in failed)
    err = json.loads(r.stderr.strip().splitlines()[-1])["error"]
    assert err["exit_code"] == 5 and err["message"].startswith("reset failed: sim_device_reset: ")


def test_one_failed_device_of_a_card_fails_the_card_reset(tree):
    # only one device reset of the four fails: the other three are reset and verify the same,
    # and still the card reset is not a success
    r, doc = reset_json(tree, "card1", "--level", "card", "--inject", "reset-fail:0c:00.0")
    assert r.returncode == 5, (r.returncode, r.stderr)
    got = [(s["detail"][:12], s["status"]) for s in steps_named(doc["result"], "sim_device_reset")]
    assert got == [("0000:0b:00.0", "ok"), ("0000:0c:00.0", "failed"), ("0000:0d:00.0", "ok"),
                   ("0000:0e:00.0", "ok")]
    assert doc["result"]["failure"].startswith("sim_device_reset: 0000:0c:00.0: ")


def test_injected_reset_fail_in_text_mode_says_failed(tree):
    r = run("--sysfs-root", tree, "reset", "card1.ep2", "--level", "flr", "--yes", "--inject", "reset-fail")
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "reset ok" not in r.stdout
    line = next(x for x in r.stderr.splitlines() if x.strip().startswith("sim_device_reset"))
    assert line.split()[-1] == "failed"
    assert "accelctl: error: reset failed: sim_device_reset: 0000:0d:00.0:" in r.stderr


# --- in use: unknown means refuse --------------------------------------------------------------


def test_a_daemon_that_does_not_say_who_is_connected_is_refused(tree):
    from accelctl.sim import service

    serve_with_faults(tree)
    pid = service.status(tree).pid
    os.kill(pid, signal.SIGSTOP)  # alive, holding its sockets, answering nothing
    try:
        r = run("--sysfs-root", tree, "reset", "card0.ep1", "--level", "flr", "--yes")
        assert r.returncode == 8, (r.returncode, r.stderr)
        assert "cannot tell whether the affected devices are in use" in r.stderr
        assert "did not answer INTROSPECT" in r.stderr and "--force" in r.stderr
        dry = run("--sysfs-root", tree, "reset", "card0.ep1", "--level", "flr", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)["plan"]
        assert plan["in_use"] == [] and len(plan["in_use_unknown"]) == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    # answering again: known, nobody connected, the reset goes ahead
    r, doc = reset_json(tree, "card0.ep1", "--level", "flr")
    assert r.returncode == 0, r.stderr
    assert doc["plan"]["in_use_unknown"] == []


# --- confirmation ------------------------------------------------------------------------------


def _on_terminal(argv, answer: bytes) -> tuple[int, bytes]:
    """Run accelctl on a pseudo-terminal, answer its prompt with `answer`; (exit code, output)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.executable, [sys.executable, "-m", "accelctl", *argv])
    out = b""
    while b"[y/N]" not in out:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.write(fd, answer)
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_end_of_input_at_the_prompt_is_not_confirmed_exit_8(tree):
    code, out = _on_terminal(["--sysfs-root", tree, "reset", "card0.ep0", "--level", "flr"], b"\x04")
    assert b"[y/N]" in out
    assert code == 8, out
    assert b"not confirmed" in out and b"Aborted" not in out


# --- what is shown -----------------------------------------------------------------------------


def test_dry_run_writes_the_plan_to_stdout(tree):
    r = run("--sysfs-root", tree, "reset", "card0", "--level", "card", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "card reset of 0000:03:00.0" in r.stdout and "9 function(s) will be reset:" in r.stdout
    assert "0000:08:00.0 card0.ep3" in r.stdout and r.stderr == ""


def test_a_device_that_does_not_come_back_fails_the_wait(tree):
    r, doc = reset_json(tree, "card0.ep1", "--level", "flr", "--inject", "no-return")
    assert r.returncode == 7, (r.returncode, r.stderr)
    (wait,) = steps_named(doc["result"], "wait_reappear")
    assert wait["status"] == "failed" and "0000:06:00.0" in wait["detail"]
    (sim,) = steps_named(doc["result"], "sim_device_reset")
    assert sim["status"] == "ok" and "did not come back" in sim["detail"]
    text = run("--sysfs-root", tree, "reset", "card0.ep2", "--level", "flr", "--yes", "--timeout", "30",
               "--inject", "no-return")
    line = next(x for x in text.stderr.splitlines() if x.strip().startswith("wait_reappear"))
    assert line.split()[-1] == "failed", text.stderr


def test_total_time_covers_every_step(tree):
    r, doc = reset_json(tree, "card0", "--level", "card")
    assert r.returncode == 0, r.stderr
    res = doc["result"]
    last_end = max(s["start_s"] + s["duration_s"] for s in res["timeline"])
    starts = [s["start_s"] for s in res["timeline"]]
    assert starts == sorted(starts)
    assert res["total_s"] >= round(last_end, 6) - 1e-6
    # and it is not the sum of durations (which leaves out the time between steps)
    assert res["total_s"] >= sum(s["duration_s"] for s in res["timeline"]) - 1e-6


# --- refusals that keep shared or hidden things safe -------------------------------------------


def test_a_hidden_device_cannot_be_reset_by_its_bdf(tree):
    env = {"ACCELCTL_VISIBLE_DEVICES": "card0.ep0"}
    r = run("--sysfs-root", tree, "reset", "0000:0b:00.0", "--level", "flr", "--dry-run", env=env)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "not visible" in r.stderr
    assert run("--sysfs-root", tree, "reset", "0000:05:00.0", "--level", "flr", "--dry-run", env=env).returncode == 0


def test_inject_into_the_shared_fixture_cache_is_refused(tree):
    before = run("--fixture", "two-socket", "diag", "--json")
    r = run("--fixture", "two-socket", "reset", "card0.ep1", "--level", "flr", "--yes", "--inject", "narrow-link")
    assert r.returncode == 8, (r.returncode, r.stderr)
    assert "fixture build two-socket" in r.stderr
    after = run("--fixture", "two-socket", "diag", "--json")
    assert after.returncode == before.returncode and after.stdout == before.stdout


# --- Linux executor against a scratch tree -----------------------------------------------------


def test_a_refused_sysfs_write_exits_5_and_puts_reset_method_back(tree, tmp_path):
    # a tree whose reset attribute leads outside it: the write is refused, the reset fails, and
    # the kernel state changed on the way (reset_method) is put back
    dev = os.path.join(tree, "bus", "pci", "devices", "0000:07:00.0")
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    os.remove(os.path.join(dev, "reset"))
    os.symlink(outside, os.path.join(dev, "reset"))
    # --force: the in-use check is not what this tests (run as a user who is not root, it cannot
    # see every process, and unknown is refused)
    r = run("--sysfs-root", tree, "reset", "card0.ep2", "--level", "flr", "--yes", "--json",
            "--platform", "linux", "--timeout", "30", "--force")
    assert r.returncode == 5, (r.returncode, r.stderr)
    res = json.loads(r.stdout)["result"]
    got = [(s["name"], s["status"]) for s in res["timeline"][:4]]
    assert got == [("read_before", "ok"), ("set_reset_method", "ok"), ("write_reset", "failed"),
                   ("restore_reset_method", "ok")]
    assert "resolves outside" in res["failure"]
    with open(os.path.join(dev, "reset_method")) as f:
        assert f.read() == "flr bus"
    assert outside.read_text() == "untouched"

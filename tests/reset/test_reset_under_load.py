"""A card reset while another process keeps IO in flight on one of its endpoints: the reset
completes and verifies, and in the IO process every command ends exactly once (completed, or
failed with a clear error because its session went stale) — none lost, none twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from accelctl.sim.fixture import build_fixture, bundled_spec_path
from tests.snapshot._cli import run

WORKER = r"""
import json, os, sys, time
from accelctl.driver import commands as cmd
from accelctl.endpoints import open_endpoint
from accelctl.errors import AccelError

tree, stop_file = sys.argv[1], sys.argv[2]
ends = {}            # seq -> how many times its callback ran
outcome = {"ok": 0, "failed": 0}
issued = 0
errors = set()
with open_endpoint("card0.ep1", sysfs_root=tree, io_timeout_s=5.0) as dev:
    q = dev.create_qpair(depth=64)

    def submit():
        global issued
        issued += 1
        seq = issued
        ends[seq] = 0
        def done(req, seq=seq):
            ends[seq] += 1
            outcome["ok" if req.completion.ok else "failed"] += 1
        q.submit(cmd.fill((seq % 64) * 64, 64, seq), callback=done)

    try:
        for _ in range(32):
            submit()
        announced = False
        while not os.path.exists(stop_file):
            dev.poll(0.01)
            while q.outstanding < 32 and not os.path.exists(stop_file):
                submit()
            if not announced and outcome["ok"] >= 200:
                print("running", flush=True)
                announced = True
    except AccelError as err:
        errors.add(type(err).__name__)
    deadline = time.monotonic() + 60  # a hang guard: draining is quick, but CI may be busy
    while q.outstanding and time.monotonic() < deadline:
        try:
            dev.poll(0.05)
        except AccelError as err:
            errors.add(type(err).__name__)
            break
    outstanding = q.outstanding
print(json.dumps({"issued": issued, "ends": list(ends.values()), "outcome": outcome,
                  "outstanding": outstanding, "errors": sorted(errors)}), flush=True)
"""


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    return str(build_fixture(bundled_spec_path("two-socket"), tmp_path / "sys"))


def test_card_reset_under_io_load_loses_and_doubles_nothing(tree, tmp_path):
    from accelctl.machine import open_machine
    from accelctl.sim import service

    open_machine(sysfs_root=tree).platform.start_daemon()
    stop = tmp_path / "stop"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, tree, str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "running", worker.stderr.read()
        r = run("--sysfs-root", tree, "reset", "card0", "--level", "card", "--force", "--yes",
                "--json", "--timeout", "30", timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["result"]["ok"] is True
        stop.touch()
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
        service.stop(tree)
    ledger = json.loads(out.strip().splitlines()[-1])
    assert ledger["outstanding"] == 0, ledger
    assert ledger["ends"] == [1] * ledger["issued"], "a command ended twice or never"
    assert ledger["outcome"]["ok"] >= 200
    # The device reset made the session stale: what was in flight ended once, with an error.
    assert ledger["outcome"]["ok"] + ledger["outcome"]["failed"] == ledger["issued"]
    assert ledger["outcome"]["failed"] > 0, "the reset should have hit commands in flight"
    assert set(ledger["errors"]) <= {"SessionStaleError", "DeviceRemovedError"}, ledger

"""The CLI as scripts run it: a real process, real pipes, exit codes (docs/exit-codes.md).

`list` and `topology` end without interpreter teardown (accelctl.cli.FAST_EXIT_COMMANDS), so
their output must still arrive whole and their exit codes must stay the documented ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from accelctl.sim.fixture import bundled_fixture_root


def _run(*args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "accelctl", *args], stdout=stdout,
                          stderr=subprocess.PIPE, timeout=120)


@pytest.mark.parametrize("command", [["topology", "--json"], ["list", "--all", "--json"]])
def test_fast_exit_commands_deliver_their_whole_document(command):
    root = str(bundled_fixture_root("scale"))  # a 1.7 MB document: many pipe buffers' worth
    proc = _run("--sysfs-root", root, *command)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1
    assert len(doc.get("nodes", doc.get("devices", []))) >= 2144


def test_a_closed_pipe_exits_141_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first byte (`| head` that finished)
    try:
        proc = _run("--sysfs-root", str(bundled_fixture_root("two-socket")), "topology", "--json",
                    stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == b""


def test_errors_keep_their_exit_codes_on_the_fast_path(tmp_path):
    proc = _run("--sysfs-root", str(tmp_path / "missing"), "topology", "--json")
    assert proc.returncode == 6  # bad input: docs/exit-codes.md
    assert json.loads(proc.stderr)["error"]["exit_code"] == 6
    usage = _run("topology", "--format", "bogus")
    assert usage.returncode == 2 and b"bogus" in usage.stderr

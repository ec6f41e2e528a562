"""How a command line is read and how a command ends: global options anywhere, a flag beating
its environment variable, one exit path for a closed stdout (real pipes, many times)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from accelctl.sim.fixture import bundled_fixture_root
from tests.cli._run import REPO, accelctl


def _cards(r: subprocess.CompletedProcess[str]) -> int:
    assert r.returncode == 0, r.stderr
    return len(json.loads(r.stdout)["cards"])


@pytest.mark.parametrize(
    "words",
    [
        ["list", "--fixture", "two-socket", "--json"],
        ["list", "--json", "--fixture=two-socket"],
        ["--fixture", "two-socket", "list", "--json"],
        ["topology", "matrix", "--json", "--fixture", "two-socket"],
        ["addr", "show", "--fixture", "two-socket", "--json"],
        ["--json", "--fixture", "two-socket", "list"],
        ["--fixture", "two-socket", "--json", "addr", "show"],
    ],
)
def test_global_options_work_before_or_after_the_command(words, tmp_path):
    r = accelctl(*words, env={"ACCELCTL_STATE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc.get("cards", doc.get("endpoints", []))) in (4, 16)


def test_json_before_a_command_without_it_is_still_a_json_usage_error():
    r = accelctl("--json", "fixture", "build", "one-card", "/nonexistent/dir")
    assert r.returncode == 2
    assert json.loads(r.stderr)["error"]["type"] == "NoSuchOption"


def test_a_global_option_after_a_positional_argument():
    r = accelctl("admin", "identify", "card0.ep0", "--fixture", "one-card", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bdf"] == "0000:01:00.0"


def test_an_option_after_double_dash_is_not_moved():
    r = accelctl("list", "--", "--fixture", "one-card")
    assert r.returncode == 2  # `list` takes no argument: the words after -- are its, not global


def test_a_flag_beats_its_environment_variable():
    two = str(bundled_fixture_root("two-socket"))
    # the flag --sysfs-root beats $ACCELCTL_FIXTURE, and --fixture beats $ACCELCTL_SYSFS_ROOT
    assert _cards(accelctl("list", "--json", "--sysfs-root", two, env={"ACCELCTL_FIXTURE": "one-card"})) == 4
    assert _cards(accelctl("list", "--json", "--fixture", "one-card", env={"ACCELCTL_SYSFS_ROOT": two})) == 1
    assert _cards(accelctl("list", "--json", env={"ACCELCTL_FIXTURE": "one-card"})) == 1


def test_two_flags_or_two_variables_that_disagree_are_a_usage_error():
    two = str(bundled_fixture_root("two-socket"))
    both_flags = accelctl("--fixture", "one-card", "--sysfs-root", two, "list")
    assert both_flags.returncode == 2 and "not both" in both_flags.stderr
    both_vars = accelctl("list", env={"ACCELCTL_FIXTURE": "one-card", "ACCELCTL_SYSFS_ROOT": two})
    assert both_vars.returncode == 2 and "ACCELCTL_FIXTURE" in both_vars.stderr


# --- a closed stdout ---------------------------------------------------------------------------

PIPE_COMMANDS = [
    ["list"], ["list", "--all"], ["list", "--json"], ["diag"], ["diag", "--json"], ["topology"],
    ["topology", "matrix"], ["topology", "--format", "dot"], ["addr", "show"], ["metrics"], ["--help"],
    ["admin", "identify", "card0.ep0"], ["io", "read", "card0.ep0", "-n", "64"],
]


@pytest.mark.parametrize("words", PIPE_COMMANDS, ids=" ".join)
def test_a_reader_gone_before_the_first_byte_is_exit_141_and_quiet(words, tmp_path):
    """Deterministic: the read end is closed before the command starts, so every write fails."""
    fixture = "one-card" if words[0] in ("admin", "io") else "two-socket"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = accelctl("--fixture", fixture, *words, stdout=write_end, env={"ACCELCTL_STATE_DIR": str(tmp_path)})
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (141, "")


@pytest.mark.parametrize("words", [["list"], ["diag"]], ids=" ".join)
def test_piped_into_head_exits_0_or_141_never_anything_else(words):
    """`accelctl ... | head -1` in a real shell, ten times: 0 when the whole output fitted in
    the pipe before head left, 141 when it did not; never 1 (a failed check) and nothing on
    stderr. Issue 12: `list | head -1` exited 1 in 3 of 5 runs."""
    cmd = " ".join([sys.executable, "-m", "accelctl", "--fixture", "two-socket", *words])
    script = f'for i in 1 2 3 4 5 6 7 8 9 10; do {cmd} 2>>"$ERR" | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}; done'
    err = REPO / ".pytest-head-stderr"
    try:
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                             env={**os.environ, "ERR": str(err)}, cwd=REPO)
        codes = [int(c) for c in out.stdout.split()]
        stderr = err.read_text() if err.exists() else ""
    finally:
        err.unlink(missing_ok=True)
    assert len(codes) == 10 and set(codes) <= {0, 141}, codes
    assert stderr == ""


def test_a_full_document_still_arrives_whole_through_a_pipe():
    r = accelctl("--fixture", "two-socket", "topology", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["nodes"]) > 60

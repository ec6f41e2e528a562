"""Shell completions: the committed scripts match the CLI, and completing really works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "completions"))
import generate  # noqa: E402


@pytest.mark.parametrize(("shell", "name"), sorted(generate.FILES.items()))
def test_committed_completion_scripts_are_up_to_date(shell, name):
    committed = (REPO / "completions" / name).read_text()
    assert committed == generate.render(shell), f"run: python completions/generate.py ({name})"


def _complete_bash(words: str) -> list[str]:
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1),
               _ACCELCTL_COMPLETE="complete_bash")
    out = subprocess.run([sys.executable, "-m", "accelctl"], env=env, capture_output=True, text=True)
    return out.stdout.split()


def test_bash_completion_completes_commands_and_options():
    assert "topology" in _complete_bash("accelctl top")
    assert "list" in _complete_bash("accelctl li")
    assert "--format" in _complete_bash("accelctl topology --fo")


@pytest.fixture(scope="module")
def accelctl_on_path(tmp_path_factory):
    """A PATH whose `accelctl` is this checkout (the scripts call the program by name)."""
    bin_dir = tmp_path_factory.mktemp("bin")
    exe = bin_dir / "accelctl"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m accelctl \"$@\"\n")
    exe.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def _complete_in_bash(path: str, line: str) -> list[str]:
    """What a real bash offers on TAB after `line`, through completions/accelctl.bash."""
    script = (
        f"source {REPO / 'completions' / 'accelctl.bash'}\n"
        f"COMP_WORDS=({line})\n"
        + ('COMP_WORDS+=("")\n' if line.endswith(" ") else "")
        + "COMP_CWORD=$((${#COMP_WORDS[@]}-1))\n"
        "_accelctl_completion accelctl\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO)}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_bash_completes_a_device_name(accelctl_on_path):
    offered = _complete_in_bash(accelctl_on_path, "accelctl --fixture two-socket admin identify card1")
    assert offered == ["card1", "card1.ep0", "card1.ep1", "card1.ep2", "card1.ep3"]
    # the global option after the command words counts too, and a BDF completes
    offered = _complete_in_bash(accelctl_on_path, "accelctl io read --fixture one-card 0000:")
    assert offered == ["0000:01:00.0"]


def test_bash_completes_fixture_and_feature_names(accelctl_on_path):
    assert _complete_in_bash(accelctl_on_path, "accelctl --fixture two-") == ["two-socket"]
    offered = _complete_in_bash(accelctl_on_path, "accelctl --fixture one-card admin get-feature card0.ep0 keep")
    assert offered == ["keep-alive-timer"]


def test_a_completion_on_a_bad_machine_offers_nothing(accelctl_on_path):
    assert _complete_in_bash(accelctl_on_path, "accelctl --sysfs-root /nonexistent admin identify ca") == []


def _complete_in(shell: str, line: str) -> str:
    """What `shell`'s completion script (completions/) gets for `line`: zsh and fish are not
    installed on every CI box, so the line goes in _TYPER_COMPLETE_ARGS as their scripts pass it."""
    env = dict(os.environ, _ACCELCTL_COMPLETE=f"complete_{shell}", _TYPER_COMPLETE_ARGS=line,
               _TYPER_COMPLETE_FISH_ACTION="get-args")
    out = subprocess.run([sys.executable, "-m", "accelctl"], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_device_names_through_their_protocol(shell):
    offered = _complete_in(shell, "accelctl --fixture two-socket admin identify card2.ep")
    for ep in range(4):
        assert f"card2.ep{ep}" in offered
    assert "card1.ep0" not in offered


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_show_each_fixture_with_its_description(shell):
    offered = _complete_in(shell, "accelctl --fixture two-")
    # the description is the spec's own [machine] description, read here from the file
    spec = (REPO / "fixtures" / "two-socket.toml").read_text()
    description = next(line.split("=", 1)[1].strip().strip('"') for line in spec.splitlines()
                       if line.startswith("description"))
    assert "two-socket" in offered
    assert description.split(":")[0] in offered  # zsh escapes the colon
    assert "one-card" not in offered

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

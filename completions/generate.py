"""Regenerate the shell completion scripts from the CLI: python completions/generate.py

The scripts call back into accelctl at completion time (typer's mechanism), so they only change
when typer's protocol or the program name changes; tests/test_completions.py fails when these
files and the CLI disagree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"bash": "accelctl.bash", "zsh": "_accelctl", "fish": "accelctl.fish"}


def render(shell: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "accelctl", "--show-completion", shell],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
    ).stdout


def main() -> None:
    for shell, name in FILES.items():
        (HERE / name).write_text(render(shell))
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()

"""Running accelctl as a user does: a real process, real pipes and the real environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def accelctl(*args: str, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE,
             stdin: int | None = subprocess.DEVNULL, input: bytes | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """`accelctl ARGS` in a child process; `env` is added to (None values removed from) ours."""
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-m", "accelctl", *args], stdout=stdout, stderr=subprocess.PIPE,
        stdin=None if input is not None else stdin, input=input.decode() if input is not None else None,
        env=full, text=True, timeout=600, cwd=REPO,
    )

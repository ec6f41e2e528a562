"""Run the real CLI in a subprocess (no CliRunner: exit codes and stdout/stderr as users see them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "accelctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def topology_json(*root_args: str, timeout: float = 60) -> dict:
    r = run(*root_args, "topology", "--json", timeout=timeout)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    doc.pop("sysfs_root", None)
    return doc

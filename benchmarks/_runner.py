"""Timing whole commands side by side: alternate the contenders, report medians and peak RSS.

Machines here are noisy (2 shared cores), so every comparison runs its contenders interleaved in
one process, never against numbers from another run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    name: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    max_rss_kib: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "command": " ".join(self.argv),
            "runs": len(self.seconds),
            "median_ms": round(self.median_s * 1000, 2),
            "min_ms": round(min(self.seconds) * 1000, 2),
            "max_rss_mib": round(self.max_rss_kib / 1024, 1),
        }


def peak_rss_kib(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Peak RSS of one run, measured by /usr/bin/time (a small C parent). Measuring from this
    Python process would count its own memory: Linux carries the pre-exec high-water mark of a
    forked or vforked child into its ru_maxrss. 0 when /usr/bin/time is not installed."""
    import shutil
    import tempfile

    if shutil.which("time") is None and not os.path.exists("/usr/bin/time"):
        return 0
    with tempfile.NamedTemporaryFile("r") as out:
        run_once(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv], env)
        return int(out.read().strip().splitlines()[-1])


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time of one run (and ru_maxrss, which includes this process's own pages: see
    peak_rss_kib for the real figure)."""
    start = time.perf_counter()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        pid = os.posix_spawnp(
            argv[0], argv, env if env is not None else os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)],
        )
    finally:
        os.close(devnull)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return elapsed, usage.ru_maxrss


def compare(contenders: dict[str, list[str]], runs: int, env: dict[str, str] | None = None) -> dict[str, Result]:
    results = {name: Result(name, argv) for name, argv in contenders.items()}
    for name, argv in contenders.items():  # warm the page cache and pyc files; real peak RSS
        results[name].max_rss_kib = peak_rss_kib(argv, env)
    for _ in range(runs):
        for name, argv in contenders.items():
            seconds, _ = run_once(argv, env)
            results[name].seconds.append(seconds)
    return results


def accelctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelctl", *args]

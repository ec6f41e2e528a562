"""Timing whole commands side by side: alternate the contenders, report medians and peak RSS.

Machines here are noisy (2 shared cores), so every comparison runs its contenders interleaved in
one process, never against numbers from another run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
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


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time of one run and its peak RSS (from wait4, so only that child is counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss


def compare(contenders: dict[str, list[str]], runs: int, env: dict[str, str] | None = None) -> dict[str, Result]:
    results = {name: Result(name, argv) for name, argv in contenders.items()}
    for name, argv in contenders.items():  # warm the page cache and pyc files
        run_once(argv, env)
    for _ in range(runs):
        for name, argv in contenders.items():
            seconds, rss = run_once(argv, env)
            results[name].seconds.append(seconds)
            results[name].max_rss_kib = max(results[name].max_rss_kib, rss)
    return results


def accelctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelctl", *args]

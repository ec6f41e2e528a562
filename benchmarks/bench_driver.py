"""Driver-core benchmark: the same numbers as `accelctl bench --json` (see accelctl/bench/driver_core.py).

    python benchmarks/bench_driver.py [--fixture one-card | --sysfs-root DIR] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json

from accelctl.bench.driver_core import run_bench
from accelctl.machine import open_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sysfs-root", default=None)
    parser.add_argument("--fixture", default=None)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    fixture = args.fixture or (None if args.sysfs_root else "one-card")
    machine = open_machine(sysfs_root=args.sysfs_root, fixture=fixture)
    print(json.dumps(run_bench(machine, seconds=args.seconds,
                               latency_iterations=args.iterations), indent=2))


if __name__ == "__main__":
    main()

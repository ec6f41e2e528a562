"""Driver-core benchmark: the same numbers as `accelctl bench --json` (see accelctl/driver/bench.py).

    python benchmarks/bench_driver.py [--sysfs-root DIR] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json

from accelctl.driver.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sysfs-root", default=None)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(run_bench(sysfs_root=args.sysfs_root, seconds=args.seconds,
                               latency_iterations=args.iterations), indent=2))


if __name__ == "__main__":
    main()

"""``python -m accelctl.sim.device --sysfs-root DIR --endpoints FILE|-``: the simulator daemon as
a process, serving the endpoints listed (JSON, as `endpoints_to_json` writes; ``-`` is stdin)."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accelctl.sim.device", description=__doc__)
    parser.add_argument("--sysfs-root", required=True, help="the fixture sysfs tree the daemon belongs to")
    parser.add_argument("--endpoints", required=True, help="JSON list of endpoints to serve (- for stdin)")
    parser.add_argument("--spin-us", type=float, default=50.0, help="device-side busy poll before sleeping")
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="exit after this many seconds with no client connected")
    parser.add_argument("--fault", action="append", default=[],
                        help='a fault spec as JSON, optionally with "bdf" (default: every endpoint)')
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s accelsim[%(process)d] %(levelname)s %(name)s: %(message)s")

    from accelctl.sim import service
    from accelctl.sim.device import endpoints_from_json

    try:
        if args.endpoints == "-":
            text = sys.stdin.read()
        else:
            with open(args.endpoints, encoding="utf-8") as f:
                text = f.read()
        endpoints = endpoints_from_json(text)
        faults = [json.loads(t) for t in args.fault]
        service.serve(args.sysfs_root, endpoints, faults=faults, spin_us=args.spin_us,
                      idle_exit_s=args.idle_exit)
    except Exception as exc:  # noqa: BLE001 - a daemon reports why it could not run, then exits non-zero
        print(f"accelsim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

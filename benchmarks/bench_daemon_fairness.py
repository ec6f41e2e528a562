"""How long one hostile client can make the simulator daemon keep everyone else waiting.

    python benchmarks/bench_daemon_fairness.py [--rounds 5] [--mib 64]

Side by side in one run, against a daemon in its own process:

- ``first_difference``: locating the first differing byte of two buffers that differ only in
  their last byte, the old way (a Python loop over the whole range, what COMPARE did) and the
  new one (1 MiB memcmp pieces + XOR), in this process;
- ``introspect_ms``: INTROSPECT round trips (the request that takes every session's lock) from
  one connection, idle and while another client keeps big COMPAREs going on its rings, and while
  a `slow` fault holds a command of that client (p50 / p99 / max, ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accelctl.protocol import abi  # noqa: E402
from accelctl.sim.device.commands import first_difference  # noqa: E402
from tests.adversarial._daemon import BDF, DaemonProcess, RawClient, add_fault, admin_request  # noqa: E402


def _old_first_difference(a: memoryview, b: memoryview) -> int | None:
    if a == b:
        return None
    x, y = bytes(a), bytes(b)
    return next(i for i in range(len(x)) if x[i] != y[i])


def _time(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def bench_first_difference(mib: int, rounds: int) -> dict:
    a = bytearray(os.urandom(mib << 20))
    b = bytearray(a)
    b[-1] ^= 1
    va, vb = memoryview(a), memoryview(b)
    old, new = [], []
    for _ in range(rounds):  # interleaved: both see the same machine
        old.append(_time(_old_first_difference, va, vb))
        new.append(_time(first_difference, va, vb))
    assert _old_first_difference(va, vb) == first_difference(va, vb) == len(a) - 1
    return {"mib": mib, "old_s": round(statistics.median(old), 3), "new_s": round(statistics.median(new), 4)}


def _introspect_latencies(daemon: DaemonProcess, n: int) -> dict:
    c = RawClient(daemon.socket(), timeout=120)
    try:
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            c.introspect()
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        c.close()
    lat.sort()
    return {"p50": round(lat[len(lat) // 2], 2), "p99": round(lat[int(len(lat) * 0.99)], 2), "max": round(lat[-1], 2)}


def bench_introspect(mib: int, samples: int) -> dict:
    daemon = DaemonProcess(memory=max(64, mib * 2) << 20)
    out = {}
    try:
        out["idle"] = _introspect_latencies(daemon, samples)
        stop = threading.Event()
        size = mib << 20

        def hog() -> None:
            with RawClient(daemon.socket(), timeout=120) as c:
                c.enable()
                c.create_io_queue(1, 64)
                buf, iova = c.alloc(size)
                buf.view[-1] = 1  # differs from device memory in the last byte
                while not stop.is_set():
                    c.io(1, abi.IoOpcode.COMPARE, timeout=120, dptr=iova, dlen=size, cdw10=0, cdw12=size)

        t = threading.Thread(target=hog, daemon=True)
        t.start()
        time.sleep(0.5)
        out[f"during_{mib}MiB_compares"] = _introspect_latencies(daemon, samples)
        stop.set()
        t.join()
        add_fault(daemon, kind="slow", opcode=abi.IoOpcode.FLUSH, qid=1, delay_ms=5000)
        with RawClient(daemon.socket(), timeout=120) as c:
            c.enable()
            c.create_io_queue(1)
            c.submit(1, abi.IoOpcode.FLUSH)
            time.sleep(0.2)
            out["during_5s_slow_fault"] = _introspect_latencies(daemon, samples)
        admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF, "clear": True})
    finally:
        daemon.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps({
        "first_difference": bench_first_difference(args.mib, args.rounds),
        "introspect_ms": bench_introspect(args.mib, args.samples),
    }, indent=2))


if __name__ == "__main__":
    main()

"""What the platform alone costs, measured in the bench's own run: the floors under its latencies.

On these machines (2 vCPUs under nested virtualisation, guest halt-polling off) two things no
driver code can go below move by 2-5x within minutes:

- ``spin_round_trip_us``: two processes ping-pong a counter in shared memory, both busy-polling,
  in plain Python. Poll mode's round trip cannot be shorter (cache-line transfers each way plus
  the interpreter's loop).
- ``eventfd_wakeup_us``: one process sleeps in epoll on an eventfd while the other busy-polls,
  answers after a fixed ``delay_us`` of work and writes the eventfd; the round trip minus that
  delay. It is the price of waking a sleeping CPU, which interrupt mode pays on every command.
- ``steal_pct``: CPU time the hypervisor took from this VM during the measurement (/proc/stat).

The partner is a forked child with nothing but a shared page and two eventfds; call this before
any thread is started in the process (the bench does).
"""

from __future__ import annotations

import mmap
import os
import select
import time
from typing import Any

_STOP = (1 << 64) - 1
#: Word indices in the shared page.
_REQ, _RESP, _MODE = 0, 8, 16  # one cache line each: the two sides never share a line
_MODE_SPIN, _MODE_WAKE = 1, 2
#: The partner gives up if the parent sends nothing for this long (the parent died).
_PARTNER_IDLE_S = 5.0


def _steal_ticks() -> int | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8])  # "cpu user nice system idle iowait irq softirq steal ..."
    except (OSError, IndexError, ValueError):
        return None


def _partner(words: memoryview, wake_fd: int, delay_ns: int) -> None:
    clock = time.perf_counter_ns
    last = 0
    idle_since = clock()
    while True:
        req = words[_REQ]
        if req == last:
            if clock() - idle_since > _PARTNER_IDLE_S * 1e9:
                return
            continue
        if req == _STOP:
            return
        last = req
        if words[_MODE] == _MODE_SPIN:
            words[_RESP] = req
        else:
            end = clock() + delay_ns
            while clock() < end:
                pass
            os.eventfd_write(wake_fd, 1)
        idle_since = clock()


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))]


def measure_floors(iterations: int = 2000, delay_us: float = 5.0) -> dict[str, Any]:
    """The platform floors (see the module docstring), p50 in microseconds."""
    page = mmap.mmap(-1, mmap.PAGESIZE)
    words = memoryview(page).cast("Q")
    wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    delay_ns = int(delay_us * 1000)
    steal0, ticks0 = _steal_ticks(), time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the partner process
        try:
            _partner(words, wake_fd, delay_ns)
        finally:
            os._exit(0)
    ep = select.epoll()
    ep.register(wake_fd, select.EPOLLIN)
    clock = time.perf_counter_ns
    seq = 0
    try:
        words[_MODE] = _MODE_SPIN
        spin = []
        for i in range(iterations + 100):
            seq += 1
            t0 = clock()
            words[_REQ] = seq
            while words[_RESP] != seq:
                pass
            if i >= 100:
                spin.append((clock() - t0) / 1000)
        words[_MODE] = _MODE_WAKE
        wake = []
        for i in range(iterations + 100):
            seq += 1
            t0 = clock()
            words[_REQ] = seq
            ep.poll()
            os.eventfd_read(wake_fd)
            if i >= 100:
                wake.append((clock() - t0 - delay_ns) / 1000)
    finally:
        words[_REQ] = _STOP
        os.waitpid(pid, 0)
        ep.close()
        os.close(wake_fd)
        words.release()
        page.close()
    steal1, ticks1 = _steal_ticks(), time.monotonic()
    steal_pct = None
    if steal0 is not None and steal1 is not None:
        cpu_ticks = (ticks1 - ticks0) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        steal_pct = round(100 * (steal1 - steal0) / max(cpu_ticks, 1), 1)
    return {
        "spin_round_trip_us": round(percentile(sorted(spin), 0.5), 2),
        "eventfd_wakeup_us": round(percentile(sorted(wake), 0.5), 2),
        "wakeup_delay_us": delay_us,
        "steal_pct": steal_pct,
        "samples": iterations,
    }

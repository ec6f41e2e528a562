"""Several real processes on one endpoint; one SIGKILLed mid-IO; the daemon killed mid-IO."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from accelctl.driver import commands as cmd
from accelctl.driver.session import Session
from accelctl.errors import DeviceRemovedError

WORKER = textwrap.dedent("""
    import sys, os
    from accelctl.driver.session import Session
    from accelctl.driver import commands as cmd
    path, slot, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    base = slot * (1 << 20)
    with Session(path, io_timeout_s=5.0) as dev:
        src, dst = dev.alloc_dma(65536), dev.alloc_dma(65536)
        print("ready", flush=True)
        for i in range(rounds):
            src.view[:] = bytes([(slot * 31 + i) & 0xFF]) * 65536
            dev.execute(cmd.write(base, src))
            dev.execute(cmd.read(base, dst))
            assert dst.view.tobytes() == src.view.tobytes(), f"slot {slot} round {i}: data mismatch"
        src.close(); dst.close()
    print("done", flush=True)
""")


def _spawn(path: str, slot: int, rounds: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, path, str(slot), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def test_processes_are_isolated_and_a_killed_one_is_reclaimed(sim, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    survivors = [_spawn(endpoint, slot, 400) for slot in (0, 1)]
    victim = _spawn(endpoint, 2, 1_000_000)  # would run for minutes
    time.sleep(0.3)  # mid-IO
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    for proc in survivors:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip().endswith("done")
    # The daemon saw the victim's socket close and released its queues and DMA maps; the
    # endpoint fixture then checks that no connection is left at all.
    deadline = time.monotonic() + 5
    while sim.connection_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.connection_count() == 0


def test_daemon_killed_mid_io_fails_everything_once(ledger) -> None:  # type: ignore[no-untyped-def]
    from ._sim import SimHarness

    sim = SimHarness.process()
    try:
        with Session(sim.socket_path(), io_timeout_s=10.0) as dev:
            q = dev.queue
            dev.execute(cmd.flush())
            sim.add_fault(kind="slow", opcode=int(cmd.abi.IoOpcode.FILL), delay_ms=200, count=0)
            endings: list[str] = []
            reqs = [q.submit(cmd.fill(0, 64, i), callback=lambda r: endings.append(r.completion.source))
                    for i in range(20)]
            time.sleep(0.1)
            sim.kill()
            t0 = time.monotonic()
            with pytest.raises(DeviceRemovedError) as info:
                q.wait(reqs[-1])
            assert time.monotonic() - t0 < 2.0  # noticed through the socket, not a timeout
            assert "went away" in str(info.value)
            assert all(r.done for r in reqs) and len(endings) == 20
            assert endings.count("removed") >= 18
            with pytest.raises(DeviceRemovedError):
                dev.execute(cmd.flush())
    finally:
        sim.stop()

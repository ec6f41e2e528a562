"""Several real processes on one endpoint; one SIGKILLed mid-IO; the daemon killed mid-IO."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from accelctl.driver import commands as cmd
from accelctl.driver.session import Session
from accelctl.errors import DeviceRemovedError
from tests._wait import wait_until

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
            if i == 0:
                print("io", flush=True)
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
    assert victim.stdout is not None and victim.stdout.readline().strip() == "io"  # mid-IO
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    for proc in survivors:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip().endswith("done")
    # The daemon saw the victim's socket close and released its queues and DMA maps; the
    # endpoint fixture then checks that no connection is left at all.
    assert wait_until(lambda: sim.connection_count() == 0)


def test_daemon_killed_mid_io_fails_everything_once(ledger) -> None:  # type: ignore[no-untyped-def]
    from ._sim import SimHarness

    sim = SimHarness.process()
    try:
        with Session(sim.socket_path(), io_timeout_s=10.0) as dev:
            q = dev.queue
            dev.execute(cmd.flush())
            # the device sits on the first command far longer than the kill takes: all 20 are in
            # flight when the daemon dies, however slowly this machine gets there
            sim.add_fault(kind="slow", opcode=int(cmd.abi.IoOpcode.FILL), delay_ms=60_000, count=0)  # the most a fault may ask
            endings: list[str] = []
            reqs = [q.submit(cmd.fill(0, 64, i), callback=lambda r: endings.append(r.completion.source))
                    for i in range(20)]
            sim.kill()
            with pytest.raises(DeviceRemovedError) as info:
                q.wait(reqs[-1])
            assert "went away" in str(info.value)
            # each ended exactly once, as removed, noticed through the socket (no timeout counted)
            assert all(r.done for r in reqs) and endings == ["removed"] * 20
            assert dev.controller.counters.timeouts == 0
            with pytest.raises(DeviceRemovedError):
                dev.execute(cmd.flush())
    finally:
        sim.stop()

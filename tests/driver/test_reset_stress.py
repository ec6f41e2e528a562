"""SPDK reset.c style: keep QD commands in flight, each completion resubmitting, and reset the
controller at seeded random points. Every command ends exactly once (the ledger checks it), the
in-flight ones at a reset with a retryable abort, and the queue drains to zero."""

from __future__ import annotations

import random

import pytest

from accelctl.protocol import abi
from accelctl.driver import commands as cmd
from accelctl.driver.session import Session


@pytest.mark.parametrize("mode", ["interrupt", "poll"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_resets_under_load(endpoint: str, mode: str, seed: int) -> None:
    rng = random.Random(seed)
    total = 1500
    depth = 32
    outcome = {"ok": 0, "retryable": 0, "other": 0}
    issued = [0]
    with Session(endpoint, wait=mode, io_timeout_s=5.0) as dev:
        q = dev.create_qpair(depth=64)

        def on_done(req) -> None:  # type: ignore[no-untyped-def]
            c = req.completion
            if c.ok:
                outcome["ok"] += 1
            elif c.sc == abi.GenericStatus.ABORTED_SQ_DELETION and c.retryable:
                outcome["retryable"] += 1
            else:
                outcome["other"] += 1
            if issued[0] < total:
                issued[0] += 1
                q.submit(cmd.fill((issued[0] % 64) * 64, 64, issued[0]), callback=on_done)

        reset_points = sorted(rng.sample(range(100, total - 100), 4))
        for _ in range(depth):
            issued[0] += 1
            q.submit(cmd.fill(0, 64, issued[0]), callback=on_done)
        waiter = dev.controller.waiter
        while q.outstanding:
            done_so_far = sum(outcome.values())
            if reset_points and done_so_far >= reset_points[0]:
                reset_points.pop(0)
                dev.reset()
            # Reap in bounded steps: with a quick device one unbounded reap (each callback
            # resubmitting) can run to the end and skip the last reset points. A step moves at
            # most 16 + depth (a reset's aborts) < 100, the distance of the last point from the end.
            if not q.process_completions(16):
                waiter.sleep(0.05)
        assert sum(outcome.values()) == total
        assert outcome["other"] == 0
        assert dev.controller.counters.resets == 4
        assert outcome["ok"] > total // 2

"""Property-based interleavings of submit / reap / timeout / abort (cancel) / reset against a
model of the command state machine.

The model: a request submitted to a live queue ends exactly once; its outcome is OK unless a
reset happened while the device owned it (then a retryable ABORTED_SQ_DELETION is also allowed),
or it was cancelled while still queued (ABORTED_BY_REQUEST), or its completion was dropped (then
timeout escalation must end it with a retryable abort). A queued request is never lost by a reset.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelctl.protocol import abi
from accelctl.driver import commands as cmd
from accelctl.driver.session import Session
from accelctl.driver.tracker import RequestState

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 40)),
        st.tuples(st.just("reap"), st.just(0)),
        st.tuples(st.just("reset"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 1000)),
        st.tuples(st.just("drop"), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(actions=ACTIONS)
def test_interleavings_match_the_model(sim, actions) -> None:  # type: ignore[no-untyped-def]
    sim.clear_faults()
    allowed: dict[int, set[str]] = {}
    ended: dict[int, int] = {}
    reqs = []

    def on_done(req) -> None:  # type: ignore[no-untyped-def]
        ended[id(req)] = ended.get(id(req), 0) + 1

    with Session(sim.socket_path(), io_timeout_s=0.15, abort_timeout_s=0.15, ready_timeout_s=1.0) as dev:
        q = dev.create_qpair(depth=16)  # 12 trackers: bigger submits queue up
        for action, arg in actions:
            if action == "submit":
                for i in range(arg):
                    r = q.submit(cmd.fill(64 * (i % 16), 64, i), callback=on_done)
                    reqs.append(r)
                    allowed[id(r)] = {"ok"}
            elif action == "reap":
                q.process_completions()
            elif action == "reset":
                for r in reqs:
                    if r.state in (RequestState.INFLIGHT, RequestState.ABORTING):
                        allowed[id(r)].add("sq_deletion")
                dev.reset()
            elif action == "cancel" and reqs:
                r = reqs[arg % len(reqs)]
                was_queued = r.state == RequestState.QUEUED
                assert r.cancel() == was_queued
                if was_queued:
                    allowed[id(r)] = {"by_request"}
            elif action == "drop":
                sim.add_fault(kind="drop_cqe", opcode=int(abi.IoOpcode.FILL), qid=q.qid)
                for r in reqs:
                    if not r.done:
                        allowed[id(r)] |= {"sq_deletion", "by_request"}
                sim.dropped = True
        while q.outstanding:
            dev.poll(0.05)
        if getattr(sim, "dropped", False):
            # A dropped completion may hit any later command: everything after is in doubt too.
            for r in reqs:
                allowed[id(r)] |= {"sq_deletion", "by_request"}
            sim.dropped = False
        for r in reqs:
            assert ended.get(id(r)) == 1, f"{r!r} ended {ended.get(id(r), 0)} times"
            c = r.completion
            kind = ("ok" if c.ok else
                    "sq_deletion" if c.sc == abi.GenericStatus.ABORTED_SQ_DELETION and c.retryable else
                    "by_request" if c.sc == abi.GenericStatus.ABORTED_BY_REQUEST else f"other:{c!r}")
            assert kind in allowed[id(r)], f"{r!r}: {kind} not in {allowed[id(r)]}"
    sim.clear_faults()

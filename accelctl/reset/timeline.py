"""A timeline of reset steps with durations: what happened, how long it took, how it ended."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TimelineStep:
    name: str
    start_s: float
    duration_s: float = 0.0
    #: "ok" | "failed" | "skipped"
    status: str = "ok"
    detail: str = ""

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start_s": round(self.start_s, 6),
            "duration_s": round(self.duration_s, 6),
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Timeline:
    t0: float = field(default_factory=time.monotonic)
    steps: list[TimelineStep] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[TimelineStep]:
        """Time a block; an exception marks the step failed (and propagates)."""
        start = time.monotonic()
        st = TimelineStep(name, start - self.t0, detail=detail)
        self.steps.append(st)
        try:
            yield st
        except BaseException as err:
            st.status = "failed"
            st.detail = f"{st.detail}: {err}" if st.detail else str(err)
            raise
        finally:
            st.duration_s = time.monotonic() - start

    def skipped(self, name: str, detail: str) -> TimelineStep:
        """Record a step that was not carried out (zero length, at the time it would have run)."""
        st = TimelineStep(name, time.monotonic() - self.t0, status="skipped", detail=detail)
        self.steps.append(st)
        return st

    @property
    def failed(self) -> list[TimelineStep]:
        return [s for s in self.steps if s.status == "failed"]

    @property
    def total_s(self) -> float:
        """From the start of the first step to the end of the last: the gaps between steps
        (rescans, bookkeeping) are part of how long the reset took."""
        return max((s.end_s for s in self.steps), default=0.0)

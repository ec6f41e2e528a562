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
            st.detail = st.detail or str(err)
            raise
        finally:
            st.duration_s = time.monotonic() - start

    @property
    def total_s(self) -> float:
        return time.monotonic() - self.t0

"""The outcome of a reset and its verdict, read from every step and every check: a step of the
reset that failed fails the reset (exit 5) whatever the checks say; otherwise any function that
did not come back the same fails verification (exit 7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelctl.errors import AccelError, DriverError, VerificationError
from accelctl.reset.steps import RESET_ACTIONS
from accelctl.reset.timeline import Timeline, TimelineStep
from accelctl.reset.verify import DeviceCheck


@dataclass(slots=True)
class ResetResult:
    checks: list[DeviceCheck]
    timeline: Timeline

    @property
    def failed_reset_steps(self) -> list[TimelineStep]:
        return [s for s in self.timeline.failed if s.name in RESET_ACTIONS]

    @property
    def reset_done(self) -> bool:
        """Every step that carries out the reset succeeded."""
        return not self.failed_reset_steps

    @property
    def failure(self) -> str | None:
        failed = self.failed_reset_steps
        return "; ".join(f"{s.name}: {s.detail}" for s in failed) if failed else None

    @property
    def differences(self) -> list[str]:
        return [d for c in self.checks for d in c.differences]

    @property
    def ok(self) -> bool:
        return not self.timeline.failed and not self.differences

    def error(self) -> AccelError:
        """The error that says why the reset is not ok (call only when not ok)."""
        if not self.reset_done:
            return DriverError(f"reset failed: {self.failure}")
        diffs = self.differences or [f"{s.name}: {s.detail}" for s in self.timeline.failed]
        return VerificationError(f"reset done, verification failed: {'; '.join(diffs)}", differences=diffs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reset_done": self.reset_done,
            "failure": self.failure,
            "differences": self.differences,
            "checks": [c.to_dict() for c in self.checks],
            "timeline": [s.to_dict() for s in self.timeline.steps],
            "total_s": round(self.timeline.total_s, 6),
        }

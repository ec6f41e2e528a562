"""Seeded, deterministic fault injection for the simulated device.

A :class:`FaultSpec` says *what* goes wrong (``kind``) and *when*: on commands matching an opcode
and/or queue, starting at the Nth match, for ``count`` matches (0 = forever), optionally with a
seeded probability. Reset-time faults (``reset_fail``, ``no_return``, ``new_serial``) fire on
device/controller resets instead of commands. ``remove``, ``fatal`` and ``daemon_death`` may also
fire ``now``. Specs travel as JSON in the FAULT control message and on the daemon command line.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from accelctl.protocol.abi import MAX_QUEUES

from . import messages as M

#: Completion-path faults (the command runs; its CQE is mangled).
DROP_CQE = "drop_cqe"  # CQE never posted
DUPLICATE_CQE = "duplicate_cqe"  # CQE posted twice
DELAY_CQE = "delay_cqe"  # CQE held for delay_ms (other commands overtake it); ABORT can hit it
CORRUPT_CQE = "corrupt_cqe"  # body bytes random, status a random error; cid and phase kept
BOGUS_CID = "bogus_cid"  # CQE posted with a cid the host never issued (gen bits flipped)
LOST_IRQ = "lost_irq"  # CQE posted, interrupt eventfd not written
SLOW = "slow"  # device sleeps delay_ms before executing each matching command
#: Controller / device faults.
FATAL = "fatal"  # CSTS.CFS set; the controller stops until it is reset
REMOVE = "remove"  # endpoint disappears: CSTS reads all-ones, connections closed
DAEMON_DEATH = "daemon_death"  # the whole daemon dies without cleanup (SIGKILL itself)
#: Reset-time faults.
RESET_FAIL = "reset_fail"  # the next `count` resets fail (EIO; controller stays not ready)
NO_RETURN = "no_return"  # after a device reset the endpoint never comes back (removed)
NEW_SERIAL = "new_serial"  # after a device reset the firmware reports another serial

COMMAND_KINDS = frozenset(
    {DROP_CQE, DUPLICATE_CQE, DELAY_CQE, CORRUPT_CQE, BOGUS_CID, LOST_IRQ, SLOW, FATAL, REMOVE, DAEMON_DEATH}
)
RESET_KINDS = frozenset({RESET_FAIL, NO_RETURN, NEW_SERIAL})
IMMEDIATE_KINDS = frozenset({FATAL, REMOVE, DAEMON_DEATH})
ALL_KINDS = COMMAND_KINDS | RESET_KINDS
#: Longest delay a slow / delay_cqe fault may ask for: long enough for any test, short enough that
#: a stuck command still ends.
MAX_DELAY_MS = 60_000.0
_MAX_COUNT = 1 << 32


class FaultSpecError(ValueError):
    """A fault spec is malformed."""


def valid_serial(value: object) -> bool:
    """A serial the identify pages can carry: printable ASCII, 1 to 32 characters."""
    return isinstance(value, str) and 0 < len(value) <= 32 and value.isascii() and value.isprintable()


@dataclass
class FaultSpec:
    kind: str
    opcode: int | None = None  # match this opcode (None: any)
    qid: int | None = None  # match this queue (None: any; 0: admin)
    nth: int = 1  # first match that fires (1-based)
    count: int = 1  # how many matches fire from the nth on (0 = forever)
    probability: float | None = None  # fire only with this probability (seeded)
    seed: int = 0
    delay_ms: float = 0.0  # delay_cqe, slow
    new_serial: str | None = None  # new_serial: the serial to report (default: derived from seed)
    now: bool = False  # fatal/remove/daemon_death: fire when added, not on a command
    # runtime state
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        # Every field is checked here, before the spec can be armed: a value of the wrong type
        # used to surface later, on the engine thread or at a reset (TypeError), or be persisted
        # (an integer serial broke IDENTIFY across restarts).
        try:
            if type(self.kind) is not str or self.kind not in ALL_KINDS:
                raise M.MessageError(f"unknown fault kind {self.kind!r}; known: {sorted(ALL_KINDS)}")
            M.optional(self.opcode, M.integer, "opcode", 0, 0xFF)
            M.optional(self.qid, M.integer, "qid", 0, MAX_QUEUES - 1)
            M.integer(self.nth, "nth", 1, _MAX_COUNT)
            M.integer(self.count, "count", 0, _MAX_COUNT)
            if self.probability is not None:
                self.probability = M.number(self.probability, "probability", 0.0, 1.0)
            M.integer(self.seed, "seed", -(1 << 63), (1 << 64) - 1)
            self.delay_ms = M.number(self.delay_ms, "delay_ms", 0.0, MAX_DELAY_MS)
            M.optional(self.new_serial, M.string, "new_serial", 32, valid_serial)
            M.boolean(self.now, "now")
        except M.MessageError as exc:
            raise FaultSpecError(exc.strerror) from None
        if self.now and self.kind not in IMMEDIATE_KINDS:
            raise FaultSpecError(f"fault {self.kind!r} cannot fire 'now'")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultSpec:
        if not isinstance(data, dict) or "kind" not in data:
            raise FaultSpecError("a fault spec is an object with at least 'kind'")
        allowed = {
            "kind", "opcode", "qid", "nth", "count", "probability", "seed", "delay_ms", "new_serial", "now",
        }
        unknown = set(data) - allowed
        if unknown:
            raise FaultSpecError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @property
    def exhausted(self) -> bool:
        return self.count != 0 and self.fired >= self.count

    def consider(self, opcode: int | None, qid: int | None) -> bool:
        """Count a match and say whether the fault fires for it."""
        if self.exhausted:
            return False
        if self.opcode is not None and opcode != self.opcode:
            return False
        if self.qid is not None and qid != self.qid:
            return False
        self.matched += 1
        if self.matched < self.nth:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


class FaultInjector:
    """The fault specs of one endpoint. ``active`` is a plain attribute the hot path tests first."""

    def __init__(self, specs: list[FaultSpec] | None = None) -> None:
        self._lock = threading.Lock()
        self._specs: list[FaultSpec] = []
        self.active = False
        for spec in specs or ():
            self.add(spec)

    def add(self, spec: FaultSpec) -> None:
        with self._lock:
            self._specs.append(spec)
            self.active = True

    def clear(self) -> None:
        with self._lock:
            self._specs.clear()
            self.active = False

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_dict() for s in self._specs]

    def on_command(self, opcode: int, qid: int) -> list[FaultSpec]:
        """The command faults firing for one command (usually none)."""
        with self._lock:
            hits = [s for s in self._specs if s.kind in COMMAND_KINDS and not s.now and s.consider(opcode, qid)]
            self._prune()
            return hits

    def on_reset(self, kind: str) -> FaultSpec | None:
        """Whether a reset-time fault of this kind fires for this reset."""
        with self._lock:
            for s in self._specs:
                if s.kind == kind and s.consider(None, None):
                    self._prune()
                    return s
            return None

    def _prune(self) -> None:
        self._specs = [s for s in self._specs if not s.exhausted]
        self.active = bool(self._specs)

"""Findings are data: what a rule observed, how bad it is, what to do. Never exceptions.

The catalogue below is the contract: every code a rule may emit is listed here with its usual
severity and a one-line meaning. docs/findings.md documents the same codes for people and a test
keeps the two in step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


#: code -> meaning. Severities may vary per finding (AER: correctable is a warning, fatal an
#: error), so they live on each Finding; docs/findings.md says which.
CODES: dict[str, str] = {
    "NO_ACCELERATORS": "no accelerator endpoints were found, so nothing was checked",
    "CARD_COUNT_MISMATCH": "the number of accelerator cards differs from the manifest",
    "CARD_MISSING": "a card the manifest places at a port or slot is not there",
    "CARD_MISMATCH": "a card differs from its manifest entry (ids, NUMA node, serial)",
    "ENDPOINT_MISSING": "a card has fewer endpoints than its manifest or its peers",
    "LINK_DOWN": "a port with a card present or expected has no link",
    "LINK_DOWNTRAINED": "a link trained below what both of its ends can do",
    "LINK_BELOW_MANIFEST": "an accelerator's path has a link slower or narrower than the manifest minimum",
    "DEVICE_INACCESSIBLE": "config space reads all ones: the device stopped answering",
    "DRIVER_UNBOUND": "an accelerator endpoint has no driver bound",
    "AER_ERRORS": "AER error counters are non-zero",
    "ACS_P2P_BLOCKED": "ACS redirect/egress control on a switch port between accelerator cards",
    "BUS_NUMBERS_EXHAUSTED": "a bridge was left without bus numbers (secondary = subordinate = 0)",
    "BUS_RANGE_CONFLICT": "a bridge's bus range does not hold its children or overlaps a sibling's",
    "BAR_UNASSIGNED": "a BAR or bridge window the device needs was not assigned",
    "LIMITED_VISIBILITY": "some facts could not be read (not root), so some checks were skipped",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation. `subject` is a node id (BDF or ``pciDDDD:BB``); `related` lists other
    nodes it concerns (the endpoints a bad link limits, the cards ACS separates)."""

    code: str
    severity: Severity
    subject: str
    message: str
    hint: str | None = None
    related: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"finding code {self.code!r} is not in the catalogue")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "subject": self.subject,
            "message": self.message,
            "hint": self.hint,
            "related": list(self.related),
        }


@dataclass(frozen=True, slots=True)
class NotChecked:
    """A check that could not be made on some subjects, and why: `diag` says what it did not
    see, so silence is never mistaken for health."""

    #: the finding code the check would have raised
    code: str
    reason: str
    #: node ids (sorted by address); `count` is their number
    subjects: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "count": len(self.subjects),
                "subjects": list(self.subjects)}


def subject_key(subject: str) -> tuple[int, int, int, int, int]:
    """Sort key by PCI address: ``machine`` first, host bridges (``pciDDDD:BB``) before the
    functions on their bus."""
    if subject == "machine":
        return (-1, 0, 0, 0, 0)
    if subject.startswith("pci"):
        dom, _, bus = subject[3:].partition(":")
        return (int(dom, 16), int(bus, 16), -1, -1, 0)
    try:
        dom, bus, rest = subject.split(":")
        dev, fn = rest.split(".")
        return (int(dom, 16), int(bus, 16), int(dev, 16), int(fn, 16), 0)
    except ValueError:
        return (1 << 20, 0, 0, 0, 1)  # not an address (should not happen): last, stable


@dataclass(slots=True)
class Report:
    """What `accelctl diag` returns: findings sorted by subject address then code."""

    findings: list[Finding]
    #: rule families that ran, and what each looked at
    checked: dict[str, Any]
    level: int
    manifest: str | None = None
    scan_warnings: list[dict[str, Any]] = field(default_factory=list)
    #: checks that could not be made, grouped by (code, reason): what is missing and where
    not_checked: list[NotChecked] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.findings.sort(key=lambda f: (subject_key(f.subject), f.code, f.message))
        self.not_checked.sort(key=lambda n: (n.code, n.reason))

    @property
    def summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return counts

    @property
    def failed(self) -> bool:
        """True when any finding is an error: the CLI exits 1."""
        return any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def nothing_checked(self) -> bool:
        """True when the machine has no accelerator endpoint: there was nothing to check, which
        is not a pass (a machine whose cards all fell off the bus looks like this)."""
        return not self.checked.get("accelerator_endpoints")

    @property
    def verdict(self) -> str:
        """``fail`` (an error finding), ``nothing_to_check`` (no accelerator), else ``pass``."""
        if self.failed:
            return "fail"
        return "nothing_to_check" if self.nothing_checked else "pass"

    def by_code(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for f in self.findings:
            key = (f.code, f.severity.value)
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "manifest": self.manifest,
            "verdict": self.verdict,
            "summary": self.summary,
            "checked": self.checked,
            "findings": [f.to_dict() for f in self.findings],
            "not_checked": [n.to_dict() for n in self.not_checked],
            "warnings": self.scan_warnings,
        }


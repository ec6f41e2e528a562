"""LIMITED_VISIBILITY: facts that could not be read (usually: not root), and which checks that
weakens. One finding per fact, not per function, so a non-root run stays readable."""

from __future__ import annotations

from collections.abc import Iterator

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, Severity
from accelctl.diagnostics.rules.presence import MACHINE

#: fact -> the checks that lose their input without it
_AFFECTS = {
    "capabilities": "ACS_P2P_BLOCKED, LINK_DOWN (slot presence) and serial checks",
    "config": "DEVICE_INACCESSIBLE, ACS_P2P_BLOCKED and LINK_DOWN (slot presence)",
    "serial_number": "serial checks (manifest serials, CARD_MISMATCH)",
}


def limited_visibility(ctx: RuleContext) -> Iterator[Finding]:
    facts: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for fn in sorted(ctx.topo.functions.values(), key=lambda f: f.bdf):
        for fact, why in fn.unknown.items():
            if fact == "config" and why == "no config file":
                continue  # nothing to read, not a privilege problem
            facts.setdefault(fact, []).append(fn.id)
            reasons.setdefault(fact, why)
    for fact, ids in sorted(facts.items()):
        affects = _AFFECTS.get(fact) or (
            "AER_ERRORS" if fact.startswith("aer_") else "checks that use it")
        sample = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        yield Finding(
            "LIMITED_VISIBILITY", Severity.INFO, MACHINE,
            f"{fact} unreadable on {len(ids)} function(s) ({reasons[fact]}; e.g. {sample}): "
            f"{affects} could not be fully checked",
            "run as root for a complete check (or check a snapshot taken as root)",
            tuple(ids[:20]),
        )

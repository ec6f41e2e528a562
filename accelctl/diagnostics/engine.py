"""run_diagnostics: a topology (+ manifest) -> a Report of findings. Raises nothing for faults:
a fault is a finding; only a bad argument (level) raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accelctl.diagnostics.context import RuleContext
from accelctl.diagnostics.findings import Finding, NotChecked, Report, subject_key
from accelctl.diagnostics.registry import MAX_LEVEL, MIN_LEVEL, DEFAULT_LEVEL, rules_for
from accelctl.errors import AccelError

if TYPE_CHECKING:
    from accelctl.diagnostics.manifest import Manifest
    from accelctl.topology import Topology


def run_diagnostics(topo: Topology, *, manifest: Manifest | None = None, level: int = DEFAULT_LEVEL) -> Report:
    """Run every rule of `level` (1..3, nested) over `topo`.

    Raises:
        AccelError: level out of range.
    """
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise AccelError(f"diagnostic level must be {MIN_LEVEL}..{MAX_LEVEL}, not {level}")
    ctx = RuleContext.build(topo, manifest, level)
    findings: list[Finding] = []
    rules = rules_for(level)
    for rule in rules:
        findings.extend(rule.check(ctx))
    checked = {"rules": [r.name for r in rules], **ctx.checked}
    return Report(
        findings=findings,
        checked=checked,
        level=level,
        manifest=manifest.path if manifest else None,
        scan_warnings=[w.to_dict() for w in topo.warnings],
        not_checked=[
            NotChecked(code, reason, tuple(sorted(set(subjects), key=subject_key)))
            for (code, reason), subjects in ctx.not_checked.items()
        ],
    )

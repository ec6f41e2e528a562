"""Diagnostics: rules over the topology -> findings; manifests; the pairwise matrix; metrics.

Imports are lazy so ``import accelctl.diagnostics`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelctl.diagnostics.engine import run_diagnostics
    from accelctl.diagnostics.findings import CODES, Finding, Report, Severity
    from accelctl.diagnostics.manifest import Manifest, load_manifest, parse_manifest

_EXPORTS = {
    "run_diagnostics": "accelctl.diagnostics.engine",
    "CODES": "accelctl.diagnostics.findings",
    "Finding": "accelctl.diagnostics.findings",
    "Report": "accelctl.diagnostics.findings",
    "Severity": "accelctl.diagnostics.findings",
    "Manifest": "accelctl.diagnostics.manifest",
    "load_manifest": "accelctl.diagnostics.manifest",
    "parse_manifest": "accelctl.diagnostics.manifest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)

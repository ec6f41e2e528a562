"""Rule families: each module holds rules ``(RuleContext) -> Iterable[Finding]``.

Every rule is near-linear in the number of functions (one pass, plus walks up from accelerator
endpoints); the registry (accelctl.diagnostics.registry) says which level runs which rule.
"""

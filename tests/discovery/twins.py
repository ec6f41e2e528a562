"""A spec's full twin: the same machine built for today's kernel, read as root, with every function
listed in bus/pci/devices. lspci on the twin judges accelctl on the spec's own tree, which may be
degraded the way real machines leave sysfs (an old kernel, a non-root reader, a partial listing):
lspci cannot judge the degraded tree itself (it does not see unlisted functions, and it reads a
pre-2012 kernel's prefetchable BARs as non-prefetchable)."""

from __future__ import annotations

from pathlib import Path

from accelctl.sim.fixture import build_fixture, parse_spec


def full_twin_text(text: str) -> str:
    """The spec text of the full twin (spec text keeps one key per line in [machine])."""
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "unlisted":
            continue
        if key == "dialect":
            line = 'dialect = "modern"'
        elif key == "config_access":
            line = 'config_access = "root"'
        out.append(line)
    return "\n".join(out) + "\n"


def degradation(text: str) -> tuple[str, str, bool]:
    """(dialect, config_access, has unlisted functions) of a spec."""
    m = parse_spec(text).machine
    return m["dialect"], m["config_access"], bool(m["unlisted"])


def unknowable(dialect: str, access: str) -> tuple[str, ...]:
    """Facts (as disagreements() names them) that a tree of this kind does not carry at all."""
    out: list[str] = []
    if access == "user":  # the capability chain is past the 64 readable bytes
        out += ["serial", "ACS control"]
        if dialect == "pre-2012":  # ... and that kernel had no link files
            out += ["link capability", "link status"]
    if dialect == "pre-2012":  # IOMMU groups reached sysfs in 3.5
        out.append("IOMMU group")
    return tuple(out)


def build_full_twin(text: str, out_dir: Path) -> Path:
    return build_fixture(parse_spec(full_twin_text(text), path="<full twin>"), out_dir)

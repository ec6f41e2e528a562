"""Output discipline: stdout carries only data (one JSON document with --json), stderr the rest.

Rich consoles exist only here. Colour follows rich's rules: none when stdout is not a terminal
or NO_COLOR is set.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


#: Width when stdout is not a terminal and $COLUMNS is unset: wide enough that tables piped to a
#: file or pager are never truncated (rich would assume 80).
PIPE_WIDTH = 250


@cache
def console() -> Console:
    import os

    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(highlight=False, soft_wrap=False, width=width)


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def esc(value: object) -> str:
    """`value` as literal text inside Rich markup. Strings from sysfs and pci.ids, paths and
    process names may hold '[...]' that Rich would take for a style and drop: second-socket bus
    ranges ('[c2-c2]'), model names ('FW323 [iOHCI-Lynx]'). Everything not written by us goes
    through here before a console sees it."""
    from rich.markup import escape

    return escape(str(value))


def emit_json(document: dict[str, Any]) -> None:
    """Write exactly one JSON document to stdout: indented for a person at a terminal, compact
    for pipes (json's C encoder only runs without indent: 5x faster on a 2,000-device machine)."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(document, indent=indent) + "\n")


def emit_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def warn(message: str) -> None:
    sys.stderr.write(f"accelctl: warning: {message}\n")


def print_warnings(warnings: list[Any], *, limit: int = 10) -> None:
    """Scan warnings to stderr, capped so a big broken machine does not drown the output."""
    for w in warnings[:limit]:
        subject = f"{w.subject}: " if w.subject else ""
        warn(f"{subject}{w.message} [{w.code}]")
    if len(warnings) > limit:
        warn(f"... and {len(warnings) - limit} more (see --json)")

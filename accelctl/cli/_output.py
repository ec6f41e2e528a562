"""Output discipline: stdout carries only data (one JSON document with --json), stderr the rest.

Rich consoles exist only here. Colour follows rich's rules: none when stdout is not a terminal
or NO_COLOR is set.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


#: Width when stdout is not a terminal, whatever $COLUMNS says: piped text is never wrapped or
#: cut (docs/output.md; rich would take $COLUMNS, or assume 80).
PIPE_WIDTH = 1 << 20


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


@cache
def console() -> Console:
    width = None if stdout_is_terminal() else PIPE_WIDTH
    return _console_class()(highlight=False, soft_wrap=False, width=width)


@cache
def err_console() -> Console:
    # Messages are sentences with paths in them: the terminal wraps them, rich does not break them.
    return _console_class()(stderr=True, highlight=False, soft_wrap=True)


@cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class AccelConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 here; a closed stdout has one exit path (_group: 141, quiet)
            self.quiet = True
            raise BrokenPipeError

    return AccelConsole


def esc(value: object) -> str:
    """`value` as literal text inside Rich markup. Strings from sysfs and pci.ids, paths and
    process names may hold '[...]' that Rich would take for a style and drop: second-socket bus
    ranges ('[c2-c2]'), model names ('FW323 [iOHCI-Lynx]'). Everything not written by us goes
    through here before a console sees it."""
    from rich.markup import escape

    return escape(str(value))


#: The version of each command's JSON document (docs/json-schema.md lists them; a test keeps the
#: two in step). Looked up by command path, then by its first word. Bump a command's version when
#: one of its fields changes meaning or goes away; adding a field keeps the version.
SCHEMA_VERSIONS: dict[str, int] = {
    "list": 1,
    "topology": 1,
    "topology matrix": 2,  # 2: p2p is true/false/null, with p2p_route and p2p_reason
    "diag": 2,  # 2: scan_warnings -> warnings; verdict "nothing_to_check"
    "addr": 1,
    "admin": 2,  # 2: device -> bdf (+ name)
    "io": 2,  # 2: device -> bdf (+ name); address "100" -> "0x100"
    "reset": 2,  # 2: affected[].card "card1" -> 1, address -> name
    "snapshot": 1,
    "sim": 1,
    "sim status": 2,  # 2: {simulators: [...], machine} (was one fixture's status object)
    "sim serve": 2,  # 2: {simulators: [the one started]} (was its status object)
    "fixture": 2,  # 2: fixtures [names] -> [{name, description}]
    "bench": 2,  # 2: device -> bdf (+ name)
}

_invocation: dict[str, Any] = {"command": "", "json": False}


def begin_invocation(*, wants_json: bool) -> None:
    """Start of one command line: forget the previous one's (tests run many in one process)."""
    _invocation.update(command="", json=wants_json)


def set_command(path: str) -> None:
    """The command words of this invocation (``addr show``), for the envelope."""
    _invocation["command"] = path


def json_requested() -> bool:
    """Whether this command line asked for JSON (so errors, usage errors too, are JSON)."""
    return bool(_invocation["json"])


def schema_version(command: str, default: int = 1) -> int:
    """`command`'s document version; `default` for a command not (yet) in the table."""
    if command in SCHEMA_VERSIONS:
        return SCHEMA_VERSIONS[command]
    return SCHEMA_VERSIONS.get(command.split(" ", 1)[0], default)


def progress_reporter() -> Callable[[str], None] | None:
    """Where the library's progress sentences go (a fixture built, a snapshot captured or
    unpacked, a benchmark started: seconds with nothing to show): one line each on stderr, and
    only for a person, so None when stderr is not a terminal or the command line asked for JSON.
    Pipes and scripts see nothing."""
    try:
        if not sys.stderr.isatty():
            return None
    except ValueError:  # closed
        return None
    if json_requested():
        return None

    def say(message: str) -> None:
        sys.stderr.write(f"accelctl: {message}…\n")
        sys.stderr.flush()

    return say


def emit_json(document: dict[str, Any]) -> None:
    """Write exactly one JSON document to stdout, in the envelope every command shares:
    ``schema_version`` first (this command's, from SCHEMA_VERSIONS), then the document.
    Indented for a person at a terminal, compact for pipes (json's C encoder only runs without
    indent: 5x faster on a 2,000-device machine)."""
    body = {k: v for k, v in document.items() if k != "schema_version"}
    version = schema_version(_invocation["command"], default=document.get("schema_version", 1))
    envelope = {"schema_version": version, **body}
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(envelope, indent=indent) + "\n")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 card``, ``2 cards``, ``0 cards``: a number and its noun, agreeing."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


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

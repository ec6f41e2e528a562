"""Reading the TOML files users write (topology specs, manifests) with errors that name the spot."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from accelctl.errors import InputFileError

_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)")

#: Bounds on what people write by hand (the largest bundled spec is a few KB, with tables
#: nested three deep and no number longer than 16 hex digits). Checked before parsing, so a
#: hostile file gets a sentence with its line, not a RecursionError or Python's int limit.
MAX_INPUT_BYTES = 1 << 20
MAX_NESTING = 32
MAX_NUMBER_CHARS = 64

#: What the bounds scan needs to tell apart: strings and comments (skipped, brackets inside
#: them do not nest), brackets, newlines, and bare tokens that start like a number.
_TOKENS = re.compile(
    "|".join((
        r'"""(?:[^\\]|\\.)*?"""',  # multi-line basic string
        r"'''.*?'''",  # multi-line literal string
        r'"(?:[^"\\\n]|\\.)*"',  # basic string
        r"'[^'\n]*'",  # literal string
        r"#[^\n]*",  # comment
        r"[\[\]{}\n]",
        r"[+-]?[0-9][0-9A-Za-z_.:+-]*",  # a number, date or time (or a key that starts like one)
    )),
    re.DOTALL,
)


def read_input_text(path: str | Path, error: type[InputFileError], what: str) -> str:
    """The text of a user's file, or `error` saying why it cannot be read: only a regular
    file (a FIFO would block the read for ever), at most MAX_INPUT_BYTES, UTF-8."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", path=p) from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"cannot read {what}: it is a directory", path=p)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"cannot read {what}: not a regular file", path=p)
        data = os.read(fd, MAX_INPUT_BYTES + 1)
        while len(data) <= MAX_INPUT_BYTES:
            more = os.read(fd, MAX_INPUT_BYTES + 1 - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", path=p) from exc
    finally:
        os.close(fd)
    if len(data) > MAX_INPUT_BYTES:
        raise error(f"the {what} is larger than {MAX_INPUT_BYTES >> 10} KiB", path=p)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=p) from exc


def check_bounds(text: str, *, path: str, error: type[InputFileError]) -> None:
    """Refuse, with the line, nesting deeper than MAX_NESTING and numbers longer than
    MAX_NUMBER_CHARS (or text longer than MAX_INPUT_BYTES), before the TOML parser sees them."""
    if len(text) > MAX_INPUT_BYTES:
        raise error(f"larger than {MAX_INPUT_BYTES >> 10} KiB", path=path)
    depth = 0
    line = 1
    for m in _TOKENS.finditer(text):
        tok = m.group()
        first = tok[0]
        if first == "\n":
            line += 1
        elif first in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise error(f"arrays or tables nested deeper than {MAX_NESTING} levels", path=path, line=line)
        elif first in "]}":
            depth = max(0, depth - 1)
        elif first in "\"'#":
            line += tok.count("\n")
        elif len(tok) > MAX_NUMBER_CHARS:
            raise error(f"a number of {len(tok)} characters (at most {MAX_NUMBER_CHARS})", path=path, line=line)


def parse_toml(text: str, *, path: str, error: type[InputFileError]) -> dict[str, Any]:
    """Parse TOML, raising `error` with the line of a syntax error or of a bound exceeded."""
    check_bounds(text, path=path, error=error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 has exc.lineno; 3.11 only puts "(at line N, column M)" in the message.
        line = getattr(exc, "lineno", None)
        m = _TOML_AT.search(str(exc))
        if line is None and m:
            line = int(m.group(1))
        msg = getattr(exc, "msg", None) or _TOML_AT.sub("", str(exc)).strip()
        raise error(f"not valid TOML: {msg}", path=path, line=line) from exc

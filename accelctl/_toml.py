"""Reading the TOML files users write (topology specs, manifests) with errors that name the spot."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from accelctl.errors import InputFileError

_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)")


def read_input_text(path: str | Path, error: type[InputFileError], what: str) -> str:
    """The text of a user's file, or `error` saying why it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}", path=p) from exc


def parse_toml(text: str, *, path: str, error: type[InputFileError]) -> dict[str, Any]:
    """Parse TOML, raising `error` with the line of a syntax error."""
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

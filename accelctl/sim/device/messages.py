"""Checking a control message's JSON payload before the daemon acts on any of it.

A client may send anything: 60,000 nested brackets, a 5,000-digit number, ``NaN``, a string where
a number belongs. Each payload is checked here against its command's shape, with limits on size,
nesting depth and list length, before a handler sees it; whatever does not fit is refused with
EINVAL and a message naming the field. Nothing outside this module parses client JSON.
"""

from __future__ import annotations

import errno
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

#: Deepest nesting any command's payload needs (FAULT: object > list > spec object > value).
MAX_DEPTH = 4
#: Longest JSON payload any command needs; control messages are 64 KiB at most anyway.
MAX_JSON_BYTES = 16 << 10
#: Most fault specs one FAULT message may add.
MAX_FAULT_SPECS = 32


class MessageError(OSError):
    """A payload that does not fit its command's schema (the sender gets EINVAL)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINVAL, message)


def parse_object(payload: bytes | memoryview) -> dict[str, Any]:
    """A JSON object within the size and depth limits, with no NaN or Infinity.

    The depth is measured on the raw bytes before the parser runs, so no nesting reaches the
    recursive parser; numbers too long to convert are refused by the parser itself (ValueError).
    """
    raw = bytes(payload)
    if len(raw) > MAX_JSON_BYTES:
        raise MessageError(f"JSON payload of {len(raw)} bytes; at most {MAX_JSON_BYTES}")
    _check_depth(raw)
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MessageError("payload must be a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _check_depth(raw: bytes) -> None:
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                raise MessageError(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


# --- field checks -----------------------------------------------------------------------------------


def check_fields(obj: Mapping[str, Any], allowed: set[str] | frozenset[str], what: str) -> None:
    unknown = set(obj) - set(allowed)
    if unknown:
        raise MessageError(f"{what}: unknown fields {sorted(unknown)}; known: {sorted(allowed)}")


def integer(value: Any, name: str, low: int, high: int) -> int:
    """An int in [low, high] (a bool is not an int here, whatever Python says)."""
    if type(value) is not int:
        raise MessageError(f"{name} must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise MessageError(f"{name} must be in [{low}, {high}], not {value}")
    return value


def number(value: Any, name: str, low: float, high: float) -> float:
    """A finite real in [low, high]."""
    if type(value) not in (int, float):
        raise MessageError(f"{name} must be a number, not {_kind(value)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise MessageError(f"{name} must be a finite number in [{low}, {high}], not {value!r}")
    return float(value)


def boolean(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise MessageError(f"{name} must be true or false, not {_kind(value)}")
    return value


def string(value: Any, name: str, max_len: int, check: Callable[[str], bool] | None = None) -> str:
    if type(value) is not str:
        raise MessageError(f"{name} must be a string, not {_kind(value)}")
    if len(value) > max_len or (check is not None and not check(value)):
        raise MessageError(f"{name} is not valid: {value[:40]!r}")
    return value


def optional(value: Any, check: Callable[..., Any], *args: Any) -> Any:
    return None if value is None else check(value, *args)


def _kind(value: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(
        type(value), type(value).__name__)


# --- per-command schemas -----------------------------------------------------------------------------


def version_request(payload: bytes | memoryview) -> tuple[int, int] | None:
    """VERSION: ``{"abi": [major, minor]}`` or nothing; the ABI the client speaks, or None."""
    if not len(payload):
        return None
    req = parse_object(payload)
    check_fields(req, {"abi"}, "VERSION")
    if "abi" not in req:
        return None
    want = req["abi"]
    if type(want) is not list or len(want) != 2:
        raise MessageError("VERSION: abi must be [major, minor]")
    return integer(want[0], "abi major", 0, 0xFFFF), integer(want[1], "abi minor", 0, 0xFFFF)


def fault_request(payload: bytes | memoryview) -> tuple[str | None, bool, list[dict[str, Any]]]:
    """FAULT (admin socket): ``{"bdf": str|null, "clear": bool, "add": [spec, ...]}``.

    Returns (bdf or None for every endpoint, clear, the spec objects). Each spec's own fields are
    checked by FaultSpec; this checks the envelope and its limits."""
    req = parse_object(payload)
    check_fields(req, {"bdf", "clear", "add"}, "FAULT")
    bdf = optional(req.get("bdf"), string, "bdf", 64)
    clear = boolean(req.get("clear", False), "clear")
    specs = req.get("add", [])
    if type(specs) is not list:
        raise MessageError("FAULT: add must be a list of fault specs")
    if len(specs) > MAX_FAULT_SPECS:
        raise MessageError(f"FAULT: at most {MAX_FAULT_SPECS} specs per message, not {len(specs)}")
    for spec in specs:
        if type(spec) is not dict:
            raise MessageError("FAULT: each spec must be an object")
    return bdf, clear, specs

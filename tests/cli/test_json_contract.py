"""One envelope and one vocabulary for every --json command (docs/json-schema.md), checked on
the real output of each command, and usage errors as the documented error object."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from accelctl.cli._output import SCHEMA_VERSIONS
from tests.cli._run import REPO, accelctl

BDF = re.compile(r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")

#: (command words, stdin) for every command that writes a --json document, on one-card.
JSON_COMMANDS: list[tuple[list[str], bytes | None]] = [
    (["list", "--json"], None),
    (["list", "--all", "--json"], None),
    (["topology", "--json"], None),
    (["topology", "--format", "json"], None),
    (["topology", "matrix", "--json"], None),
    (["diag", "--json"], None),
    (["addr", "show", "--json"], None),
    (["addr", "assign", "--json"], None),
    (["addr", "diff", "--json"], None),
    (["addr", "plan", "--json"], None),
    (["admin", "identify", "card0.ep0", "--json"], None),
    (["admin", "log", "card0.ep0", "--json"], None),
    (["admin", "features", "card0.ep0", "--json"], None),
    (["admin", "get-feature", "card0.ep0", "keep-alive-timer", "--json"], None),
    (["admin", "set-feature", "card0.ep0", "keep-alive-timer", "0", "--json"], None),
    (["io", "write", "card0.ep0", "--address", "0x100", "--json"], b"0123456789abcdef"),
    (["io", "compare", "card0.ep0", "--address", "0x100", "--json"], b"0123456789abcdef"),
    (["io", "fill", "card0.ep0", "--address", "0x200", "-n", "64", "--pattern", "0x5", "--json"], None),
    (["reset", "card0", "--level", "flr", "--dry-run", "--json"], None),
    (["sim", "status", "--json"], None),
    (["fixture", "list", "--json"], None),
    # exit 1 when a target is missed (a busy machine): the document is whole either way
    (["bench", "--seconds", "0.05", "--iterations", "50", "--json"], None),
]


def _walk(value: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key, item
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def vocabulary_problems(doc: dict[str, Any]) -> list[str]:
    """Where `doc` names a thing otherwise than docs/json-schema.md says."""
    problems = []
    for where, key, value in _walk(doc):
        if key in ("device", "scan_warnings", "target_address"):
            problems.append(f"{where}: '{key}' is not in the vocabulary")
        if key == "card" and value is not None and not isinstance(value, int):
            problems.append(f"{where}: card {value!r} is not an index")
        if key in ("address", "start") and value is not None and not (isinstance(value, str) and value.startswith("0x")):
            problems.append(f"{where}: address {value!r} is not 0x-hex")
        if key == "bdf" and value is not None and not BDF.match(str(value)):
            problems.append(f"{where}: bdf {value!r}")
    return problems


def expected_version(words: list[str]) -> int:
    path = " ".join(w for w in words[:2] if not w.startswith("-"))
    return SCHEMA_VERSIONS.get(path, SCHEMA_VERSIONS[words[0]])


@pytest.mark.parametrize(("words", "stdin"), JSON_COMMANDS, ids=[" ".join(w[:2]) + (" ".join(w[2:3]) if w[0] == "topology" else "") for w, _ in JSON_COMMANDS])
def test_every_json_command_speaks_the_one_vocabulary(words, stdin, tmp_path):
    env = {"ACCELCTL_STATE_DIR": str(tmp_path)}
    if words[:2] == ["addr", "diff"]:
        assert accelctl("--fixture", "one-card", "addr", "assign", env=env).returncode == 0
    r = accelctl("--fixture", "one-card", *words, input=stdin, env=env)
    assert r.returncode == 0 or (words[0] == "bench" and r.returncode == 1), r.stderr
    doc = json.loads(r.stdout)  # exactly one document
    assert next(iter(doc)) == "schema_version"
    assert doc["schema_version"] == expected_version(words)
    assert vocabulary_problems(doc) == []


def test_the_vocabulary_check_can_fail():
    bad = {"device": "0000:01:00.0", "x": [{"card": "card1", "address": "100", "bdf": "01:00.0"}]}
    assert len(vocabulary_problems(bad)) == 4


def test_io_and_admin_name_the_device_by_bdf_and_name(tmp_path):
    r = accelctl("--fixture", "one-card", "io", "fill", "card0.ep0", "-n", "8", "--address", "256", "--json")
    doc = json.loads(r.stdout)
    assert (doc["bdf"], doc["name"], doc["address"]) == ("0000:01:00.0", "card0.ep0", "0x100")


def test_documented_versions_are_the_ones_stamped():
    text = (REPO / "docs" / "json-schema.md").read_text()
    table = text.split("<!-- versions:", 1)[1].split("\n\n", 1)[0]
    documented = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            documented[cells[0].split("`")[1]] = int(cells[1])
    assert documented == SCHEMA_VERSIONS


@pytest.mark.parametrize(
    "words",
    [
        ["list", "--bogus", "--json"],
        ["admin", "identify", "--json"],  # missing argument
        ["topology", "--format", "json", "--nope"],
        ["diag", "--level", "7", "--json"],
        ["--fixture", "one-card", "--sysfs-root", "/sys", "list", "--json"],
    ],
)
def test_usage_errors_under_json_are_the_error_object(words):
    r = accelctl(*words)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    doc = json.loads(r.stderr)
    assert doc["schema_version"] == 1
    assert doc["error"]["exit_code"] == 2 and doc["error"]["message"]


def test_usage_errors_without_json_stay_text():
    r = accelctl("list", "--bogus")
    assert r.returncode == 2
    assert "No such option: --bogus" in r.stderr and not r.stderr.lstrip().startswith("{")

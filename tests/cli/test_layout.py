"""The table layout policy (accelctl/cli/_layout.py), as a user sees it: at an 80-column
terminal (a real pseudo-terminal) identifiers are never cut and what does not fit is said; piped
output is never wrapped or cut, even with COLUMNS=80 exported."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli._run import accelctl, at_terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _lines(text: str) -> list[str]:
    return ANSI.sub("", text).splitlines()


def _bdfs(fixture: str, *args: str) -> list[str]:
    r = accelctl("--fixture", fixture, "list", *args, "--json")
    return [d["id"] for d in json.loads(r.stdout)["devices"]]


@pytest.mark.parametrize(("fixture", "args"), [("fault-downtrained", ()), ("two-socket", ()), ("two-socket", ("--all",))])
def test_list_at_80_columns_never_cuts_an_identifier(fixture, args):
    code, shown, stderr = at_terminal("--fixture", fixture, "list", *args, columns=80)
    assert code == 0, stderr
    lines = _lines(shown)
    assert max(len(line) for line in lines) <= 80
    assert "…" not in shown
    words = set(" ".join(lines).split())
    assert set(_bdfs(fixture, *args)) <= words  # every BDF whole, none folded or cut
    if fixture == "fault-downtrained":
        assert sum(line.count("DOWNTRAINED") for line in lines) == 2
        assert "1002:74a1" in words and "00-00-00-00-0a-11-02-00" in words  # model and serial whole
    if args:
        # 8 columns cannot fit 80: the ones left out are named, never silently dropped
        assert "not shown at 80 columns:" in stderr and "SERIAL" in stderr


def test_matrix_at_80_columns_pages_and_shows_every_column():
    code, shown, stderr = at_terminal("--fixture", "two-socket", "topology", "matrix", columns=80)
    assert code == 0, stderr
    lines = _lines(shown)
    assert max(len(line) for line in lines) <= 80 and "…" not in shown
    assert "columns 1-8 of 16 (c0.0 .. c1.3)" in lines and "columns 9-16 of 16 (c2.0 .. c3.3)" in lines
    headers = [line.split() for line in lines if line.lstrip().startswith("c0.0") or line.lstrip().startswith("c2.0")]
    assert sorted(sum(headers, [])) == sorted(f"c{c}.{e}" for c in range(4) for e in range(4))
    # each page has all 16 rows, labelled whole
    assert sum(1 for line in lines if line.startswith("card3.ep3 (0000:8e:00.0)")) == 2


def test_diag_and_addr_at_80_columns():
    code, shown, stderr = at_terminal("--fixture", "fault-downtrained", "diag", "--level", "1", columns=80)
    assert code == 1
    lines = _lines(shown)
    assert max(len(line) for line in lines) <= 80 and "…" not in shown
    assert sum("LINK_DOWNTRAINED" in line and "0000:0" in line for line in lines) == 2
    code, shown, stderr = at_terminal("--fixture", "two-socket", "addr", "show", columns=80)
    assert code == 0 and max(len(line) for line in _lines(shown)) <= 80
    assert "POSITION" in stderr  # left out, and said


def test_piped_output_is_never_wrapped_even_with_COLUMNS_exported():
    r = accelctl("--fixture", "fault-downtrained", "list", env={"COLUMNS": "80"})
    rows = [line for line in r.stdout.splitlines() if line.startswith("card")]
    assert len(rows) == 3
    assert any("0000:04:00.0" in line and "DOWNTRAINED" in line and "00-00-00-00-0a-11-01-00" in line for line in rows)
    m = accelctl("--fixture", "two-socket", "topology", "matrix", env={"COLUMNS": "80"})
    header = m.stdout.splitlines()[0].split()
    assert len(header) == 16  # every column in one table, none left out
    assert "columns" not in m.stdout.splitlines()[0]
    t = accelctl("--fixture", "two-socket", "topology", env={"COLUMNS": "80"})
    assert any("0000:00:01.1 root_port" in line and "(pcieport)" in line for line in t.stdout.splitlines())

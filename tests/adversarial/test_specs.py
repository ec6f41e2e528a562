"""Hostile topology specs and manifests: files a user hands to `fixture build`, `--fixture`-like
builds and `diag --manifest`.

What must hold (docs/security.md): a bad file is exit 6 with the file and the line, never an
internal error (exit 70); the bounds (nesting, number length, file size, PCI functions a spec
may describe) are checked before the parser or the builder does the work, so nothing is written
for a spec that is refused.
"""

from __future__ import annotations

import os

import pytest

from accelctl.errors import SpecError
from accelctl.sim.fixture import build_fixture
from tests.snapshot._cli import run

SPEC_HEAD = """\
[machine]
name = "t"

[[host_bridge]]
name = "h0"
"""

#: 17 lines that describe 6,193 PCI functions (24 root ports x an endpoint with 255 VFs): the
#: old builder wrote ~200k files for it (issue 14: a 17-line spec made 2.2 M files, 6.9 GB).
EXPANDING_SPEC = SPEC_HEAD + """
[[root_port]]
name = "rp{i}"
parent = "h0"
at = "01.1"
count = 24

[[endpoint]]
name = "ep{i}"
parent = "rp*"
id = "1e52:401e"
class = 0x120000
vfs = 255
"""


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", 6, "nested deeper"),
        ("[machine.aer]\n" + "a = " + "{ b = " * 60 + "1" + " }" * 60 + "\n", 7, "nested deeper"),
        ("cpus = " + "9" * 5000 + "\n", 6, "a number of 5000 characters"),
        ("n = 0x" + "f" * 5000 + "\n", 6, "a number of 5002 characters"),
    ],
    ids=["deep-array", "deep-inline-table", "5000-digit-integer", "5000-digit-hex"],
)
def test_hostile_toml_is_bad_input_with_file_and_line(tmp_path, body, line, words):
    """Issue 14: deeply nested TOML or a 5,000-digit integer exited 70 with no file or line."""
    spec = _write(tmp_path, "bad.toml", SPEC_HEAD + body)
    r = run("fixture", "build", str(spec), str(tmp_path / "out"))
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert f"{spec}:{line}:" in r.stderr and words in r.stderr
    assert "internal error" not in r.stderr


def test_strings_and_comments_do_not_count_as_nesting(tmp_path):
    text = SPEC_HEAD.replace('name = "t"', 'name = "' + "[" * 100 + '"  # ' + "{" * 100)
    spec = _write(tmp_path, "ok.toml", text + '\n[[root_port]]\nname = "rp0"\nparent = "h0"\nat = "01.1"\n')
    r = run("fixture", "build", str(spec), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr


def test_a_spec_describing_too_many_functions_is_refused_before_building(tmp_path):
    spec = _write(tmp_path, "big.toml", EXPANDING_SPEC)
    out = tmp_path / "out"
    with pytest.raises(SpecError) as info:
        build_fixture(spec, out)
    err = info.value
    assert err.path == str(spec) and err.line == 13  # the [[endpoint]] that crosses the bound
    assert "6168 PCI functions" in str(err) and "at most 6000" in str(err)
    assert not out.exists() or os.listdir(out) == []


def test_a_hostile_manifest_is_bad_input_with_file_and_line(tmp_path):
    manifest = _write(tmp_path, "m.toml", 'description = "x"\nexpect = ' + "[" * 3000 + "]" * 3000 + "\n")
    r = run("--fixture", "one-card", "diag", "--manifest", str(manifest))
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert f"{manifest}:2:" in r.stderr and "nested deeper" in r.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory", "huge"])
def test_a_spec_that_is_not_a_small_regular_file_is_bad_input(tmp_path, kind):
    spec = tmp_path / "spec.toml"
    if kind == "fifo":
        os.mkfifo(spec)  # nobody writes it: reading it used to block for ever
    elif kind == "directory":
        spec.mkdir()
    else:
        spec.write_text(SPEC_HEAD + "# " + "x" * (2 << 20) + "\n")
    r = run("fixture", "build", str(spec), str(tmp_path / "out"), timeout=120)
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert str(spec) in r.stderr

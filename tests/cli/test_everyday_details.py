"""Small things a user meets every day (issue 12): plurals, hints, units, binary on a terminal,
numbers that do not fit, and typos in file names: clear errors with documented codes."""

from __future__ import annotations

import json

from tests.cli._run import accelctl, at_terminal


def test_one_is_singular(tmp_path):
    r = accelctl("--fixture", "one-card", "list")
    assert r.stdout.splitlines()[-1] == "1 card, 1 endpoint"
    a = accelctl("--fixture", "one-card", "addr", "assign", env={"ACCELCTL_STATE_DIR": str(tmp_path)})
    assert a.stderr.startswith("wrote 1 endpoint on 1 card to ")


def test_a_bare_vendor_id_gets_the_id_syntax_as_hint():
    r = accelctl("--fixture", "one-card", "--accel-id", "1af4", "list")
    assert r.returncode == 2
    assert "--accel-id 1af4:*" in r.stderr and "not a device name" not in r.stderr


def test_temperature_is_shown_in_celsius_and_kept_in_kelvin_for_scripts():
    text = accelctl("--fixture", "one-card", "admin", "log", "card0.ep0").stdout
    assert "temperature: 45 °C (318 K)" in text
    doc = json.loads(accelctl("--fixture", "one-card", "admin", "log", "card0.ep0", "--json").stdout)
    assert doc["content"]["temperature_k"] == 318


def test_io_read_refuses_a_terminal_but_not_a_file_or_pipe(tmp_path):
    assert accelctl("--fixture", "one-card", "io", "fill", "card0.ep0", "-n", "4", "--pattern", "0x41424344").returncode == 0
    code, shown, stderr = at_terminal("--fixture", "one-card", "io", "read", "card0.ep0", "-n", "4")
    assert code == 2 and shown == "" and "-o FILE" in stderr
    piped = accelctl("--fixture", "one-card", "io", "read", "card0.ep0", "-n", "4")
    assert piped.returncode == 0 and piped.stdout == "DCBA"
    out = tmp_path / "x.bin"
    assert accelctl("--fixture", "one-card", "io", "read", "card0.ep0", "-n", "4", "-o", str(out)).returncode == 0
    assert out.read_bytes() == b"DCBA"


def test_a_pattern_wider_than_32_bits_is_an_error_not_cut():
    r = accelctl("--fixture", "one-card", "io", "fill", "card0.ep0", "-n", "4", "--pattern", "0x1ffffffff")
    assert r.returncode == 2 and "32 bits" in r.stderr
    assert accelctl("--fixture", "one-card", "io", "fill", "card0.ep0", "-n", "4", "--pattern", "0xffffffff").returncode == 0


def test_typos_in_file_names_are_clear_errors(tmp_path):
    cases = [
        (["io", "write", "card0", "-i", "/nonexistent"], "/nonexistent"),
        (["io", "read", "card0", "-n", "4", "-o", "/nonexistent/dir/x"], "/nonexistent/dir/x"),
        (["metrics", "-o", "/nonexistent/x.prom"], "/nonexistent/x.prom"),
        (["io", "compare", "card0", "-i", str(tmp_path)], str(tmp_path)),  # a directory
    ]
    for words, named in cases:
        r = accelctl("--fixture", "one-card", *words)
        assert r.returncode == 6, (words, r.stderr)
        assert named in r.stderr and "internal error" not in r.stderr, r.stderr
        j = accelctl("--fixture", "one-card", *words, "--json") if words[0] == "io" and words[1] != "read" else None
        if j is not None:
            assert json.loads(j.stderr)["error"]["exit_code"] == 6


def test_a_file_error_no_command_converted_still_names_the_file(tmp_path):
    """The last-resort conversion in the group (a command that let an OSError through)."""
    from accelctl.cli._errors import ExitCode, exit_code_for
    from accelctl.cli._group import _named_file_error

    missing = tmp_path / "nope" / "x"
    try:
        missing.read_bytes()
    except OSError as err:
        typed = _named_file_error(err)
    assert exit_code_for(typed) == ExitCode.BAD_INPUT
    assert str(missing) in str(typed) and "No such file" in str(typed)

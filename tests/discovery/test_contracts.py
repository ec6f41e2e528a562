"""Contracts scripts and other layers rely on: cheap import, exit-code table, error objects."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from accelctl import errors as E
from accelctl.cli._errors import ERROR_EXIT_CODES, ExitCode, exit_code_for

REPO = Path(__file__).resolve().parents[2]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_import_accelctl_is_cheap():
    heavy = {"typer", "rich", "networkx", "click", "pyudev", "numpy", "torch"}
    assert _modules_after("import accelctl") & heavy == set()


def test_scanning_a_tree_does_not_import_the_cli_or_networkx():
    loaded = _modules_after("import accelctl.topology as t; t.build_topology('/sys')")
    assert loaded & {"typer", "rich", "networkx", "click"} == set()


def test_a_cached_fixture_is_opened_without_importing_the_builder():
    """--fixture NAME runs in loops (scripts, tests): once the tree is cached, the builder and the
    spec loader are dead weight (~10 ms a run)."""
    from accelctl.sim.fixture import bundled_fixture_root

    bundled_fixture_root("one-card")  # cached by this process, in the cache the child shares
    code = ("import sys; from accelctl.platform.roots import open_source; open_source(fixture='one-card'); "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "accelctl.sim.fixture.bundled" in loaded
    assert loaded & {"accelctl.sim.fixture.build", "accelctl.sim.fixture.loader"} == set()


def test_exit_code_table_is_documented():
    doc = (REPO / "docs" / "exit-codes.md").read_text()
    documented = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\|\s*(\d+)\s*\|\s*`(\w+)`", doc, re.M)}
    assert documented == {int(c): c.name for c in ExitCode}


def _all_error_classes():
    seen, stack = [], [E.AccelError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_maps_to_a_documented_exit_code(cls):
    assert exit_code_for(cls.__new__(cls)) in set(ERROR_EXIT_CODES.values())


def test_errors_survive_pickling():
    errs = [
        E.AmbiguousAddressError("card1", ["0000:01:00.0", "0000:02:00.0"]),
        E.SpecError("unknown key 'widht'", path="x.toml", line=3, key="port.link"),
        E.DeviceNotFoundError("card9"),
    ]
    for err in errs:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    assert errs[0].candidates == pickle.loads(pickle.dumps(errs[0])).candidates


def test_cli_subprocess_version_and_bad_root():
    run = subprocess.run(
        [sys.executable, "-m", "accelctl", "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.startswith("accelctl ")
    run = subprocess.run(
        [sys.executable, "-m", "accelctl", "--sysfs-root", "/nonexistent", "list", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == ExitCode.BAD_INPUT
    assert run.stdout == ""
    err = json.loads(run.stderr)
    assert err["error"]["type"] == "SysfsRootError" and "does not exist" in err["error"]["message"]
    assert "Traceback" not in run.stderr

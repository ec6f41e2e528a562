"""Each directory accelctl keeps files in is computed in one place (accelctl/dirs.py): a second
computation drifts (the fixture cache honoured $ACCELCTL_CACHE_DIR in one spelling, the snapshot
cache in another) and then two commands disagree about where a file is."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from accelctl import dirs

PACKAGE = Path(__file__).resolve().parents[1] / "accelctl"
#: Names that compute a directory: only dirs.py may read them.
DIRECTORY_SOURCES = re.compile(
    r"^(XDG_CACHE_HOME|XDG_RUNTIME_DIR|XDG_STATE_HOME|ACCELCTL_(CACHE|RUNTIME|STATE)_DIR|\.cache|/var/lib/accelctl)$|"
    r"^(gettempdir|expanduser|home)\($"
)


def _code_strings_and_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that are not docstrings, and the names of called functions."""
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    #: Strings shown to people (a hint, a --help text, the variable typer names in --help) name a
    #: directory's variable without computing anything.
    shown = {id(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
             for kw in node.keywords if kw.arg in ("hint", "help", "envvar")}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and id(node) not in shown:
                out.append((node.lineno, node.value))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            out.append((node.lineno, f"{name}("))
    return out


def test_only_dirs_py_computes_a_directory():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "dirs.py":
            continue
        for number, text in _code_strings_and_calls(ast.parse(path.read_text(encoding="utf-8"))):
            if DIRECTORY_SOURCES.search(text):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {text}")
    assert not offenders, "\n".join(offenders)


def _in_child(code: str, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ACCELCTL_"))}
    clean.update(env)
    r = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_both_caches_live_in_the_one_cache_directory(tmp_path):
    code = ("import accelctl.snapshot.cache as r, accelctl.sim.fixture.bundled as b; from accelctl import dirs; "
            "print(r.cache_dir()); print(b.cache_dir('fixtures')); print(dirs.cache_dir())")
    for env, expected in (
        ({"ACCELCTL_CACHE_DIR": str(tmp_path / "a")}, tmp_path / "a"),
        ({"XDG_CACHE_HOME": str(tmp_path / "x")}, tmp_path / "x" / "accelctl"),
        ({"HOME": str(tmp_path / "h")}, tmp_path / "h" / ".cache" / "accelctl"),
    ):
        snapshots, fixtures, cache = _in_child(code, env).splitlines()
        assert Path(cache) == expected
        assert Path(snapshots) == expected / "snapshots"
        assert Path(fixtures) == expected / "fixtures"


def test_runtime_and_state_directories_follow_their_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELCTL_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert dirs.runtime_dir() == tmp_path / "run" / "accelctl"
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "mine"))
    assert dirs.runtime_dir() == tmp_path / "mine"
    monkeypatch.delenv("ACCELCTL_STATE_DIR", raising=False)
    assert dirs.state_dir() == Path("/var/lib/accelctl")
    monkeypatch.setenv("ACCELCTL_STATE_DIR", str(tmp_path / "s"))
    assert dirs.state_dir() == tmp_path / "s"
    assert dirs.state_dir(tmp_path / "flag") == tmp_path / "flag"  # the flag wins

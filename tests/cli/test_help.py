"""Every help page ends with examples (gh / kubectl style), and every example runs as shown."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from accelctl.cli._examples import EXAMPLES
from accelctl.cli.app import build_app
from tests.cli import doc_examples as docs


def _paths() -> list[str]:
    out = []

    def walk(command, path: str) -> None:  # type: ignore[no-untyped-def]
        out.append(path)
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(build_app()), "")
    return out


PATHS = _paths()


def test_every_command_is_covered():
    assert len(PATHS) > 30
    assert sorted(p for p in PATHS if p not in EXAMPLES) == []


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p or "accelctl")
def test_help_ends_with_examples(path):
    r = CliRunner().invoke(build_app(), [*path.split(), "--help"])
    assert r.exit_code == 0, r.output
    help_text = r.stdout
    section = help_text[help_text.index("Examples:"):]
    commands = [line.strip()[2:] for line in section.splitlines() if line.strip().startswith("$ ")]
    assert commands == [e.command for e in EXAMPLES[path]]  # whole, not rewrapped
    assert all(line.strip().startswith("# ") for line in section.splitlines()
               if line.strip() and not line.strip().startswith(("$ ", "Examples:")))


def test_every_example_runs_as_shown(tmp_path):
    env = docs.environment(tmp_path)
    failures = []
    for path, examples in EXAMPLES.items():
        for ex in examples:
            if not ex.runs:
                continue
            got = docs.run(docs.Example(f"help of '{path}'", 0, ex.command), tmp_path, env)
            if got.exit_code not in ex.exits:
                failures.append(f"{path}: $ {ex.command} -> exit {got.exit_code}\n" + "\n".join(got.output[-4:]))
    assert failures == []

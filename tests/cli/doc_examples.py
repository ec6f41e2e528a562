"""The console examples of README.md and docs/*.md, as a user types them.

A ```console block holds commands (lines starting with ``$ ``) and what each prints (stdout and
stderr, as a terminal shows them piped: nothing wrapped). ``...`` on a line of its own ends the
part of the output that is compared. ``$ echo $?`` followed by a number states the exit code of
the command before it; without one, a command must exit 0.

    python -m tests.cli.doc_examples            # run them all, report drift
    python -m tests.cli.doc_examples --update   # rewrite the shown output from real runs
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)
ELLIPSIS = "..."


@dataclass
class Example:
    doc: str  # path relative to the repository
    line: int  # line of the command in the doc
    command: str
    output: list[str] = field(default_factory=list)  # expected lines, up to an ELLIPSIS
    truncated: bool = False
    exit_code: int = 0

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: $ {self.command}"


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def examples(path: Path) -> list[Example]:
    text = path.read_text(encoding="utf-8")
    found: list[Example] = []
    for block in BLOCK.finditer(text):
        first_line = text[: block.start(1)].count("\n") + 1
        current: Example | None = None
        for offset, line in enumerate(block.group(1).splitlines()):
            if line.startswith("$ echo $?"):
                continue
            if line.startswith("$ "):
                current = Example(str(path.relative_to(REPO)), first_line + offset, line[2:])
                found.append(current)
            elif current is not None:
                previous = block.group(1).splitlines()[offset - 1] if offset else ""
                if previous.startswith("$ echo $?"):
                    current.exit_code = int(line)
                elif line == ELLIPSIS:
                    current.truncated = True
                elif not current.truncated:
                    current.output.append(line.rstrip())
    return found


def all_examples() -> list[Example]:
    return [e for p in doc_files() for e in examples(p)]


@dataclass
class Run:
    exit_code: int
    output: list[str]


def environment(workdir: Path) -> dict[str, str]:
    """A user's shell: `accelctl` on PATH (this checkout), private state and runtime dirs, no
    colour, no $COLUMNS (output is piped)."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "accelctl"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m accelctl \"$@\"\n")
    exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELCTL_") and k not in ("COLUMNS", "LINES")}
    run_dir = workdir / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(REPO), NO_COLOR="1",
               ACCELCTL_STATE_DIR=str(workdir / "state"), ACCELCTL_RUNTIME_DIR=str(run_dir))
    for var in ("ACCELCTL_CACHE_DIR",):  # keep the test session's cache (fixtures are built once)
        if var in os.environ:
            env[var] = os.environ[var]
    return env


def run(example: Example, workdir: Path, env: dict[str, str]) -> Run:
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", example.command], cwd=workdir, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return Run(proc.returncode, [line.rstrip() for line in proc.stdout.splitlines()])


def drift(example: Example, got: Run) -> list[str]:
    problems = []
    if got.exit_code != example.exit_code:
        problems.append(f"exit {got.exit_code}, the doc says {example.exit_code}:\n" + "\n".join(got.output[-5:]))
    if example.output:
        shown = got.output[: len(example.output)] if example.truncated else got.output
        if shown != example.output:
            problems.append("output differs:\n" + "\n".join(
                f"  doc: {a!r}\n  now: {b!r}" for a, b in zip(example.output + [""] * 99, shown + [""] * 99)
                if a != b
            )[:2000])
    return problems


def update(path: Path, results: dict[int, Run]) -> None:
    """Rewrite the output shown under each command of `path` from `results` (by command line),
    keeping each example's length when it was cut with '...'."""
    lines = path.read_text(encoding="utf-8").splitlines()
    by_line = {e.line: e for e in examples(path)}
    out: list[str] = []
    i = 0
    while i < len(lines):
        number = i + 1
        out.append(lines[i])
        i += 1
        if number not in by_line:
            continue
        ex = by_line[number]
        # skip the old output (up to the next command or the end of the block)
        while i < len(lines) and not lines[i].startswith("$ ") and lines[i] != "```":
            i += 1
        got = results[number]
        if ex.output or ex.truncated:
            keep = got.output[: len(ex.output)] if ex.truncated else got.output
            out.extend(keep)
            if ex.truncated:
                out.append(ELLIPSIS)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="accelctl-docs-") as tmp:
        workdir = Path(tmp)
        env = environment(workdir)
        failed = 0
        for path in doc_files():
            results: dict[int, Run] = {}
            for ex in examples(path):
                got = results[ex.line] = run(ex, workdir, env)
                for problem in drift(ex, got):
                    failed += 1
                    print(f"{ex}\n{problem}\n")
            if "--update" in sys.argv and results:
                update(path, results)
        return 1 if failed and "--update" not in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())

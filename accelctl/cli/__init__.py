"""The command-line interface. Only this package imports typer and rich."""

from __future__ import annotations

#: Read-only commands whose process ends without interpreter teardown. Scripts call them in loops
#: on large machines, and freeing a 2,000-function topology object by object at exit costs about
#: as much as encoding it as JSON. They start no threads, hold no temporary files and register no
#: exit handlers, so once their output is flushed nothing is left for the teardown to do. Every
#: other command exits normally.
FAST_EXIT_COMMANDS = frozenset({"list", "topology"})


def main() -> None:
    import sys

    from accelctl.cli.app import build_app, command_word

    argv = sys.argv[1:]
    app = build_app(argv)
    if command_word(argv) not in FAST_EXIT_COMMANDS:
        app(prog_name="accelctl")
        return
    try:
        app(prog_name="accelctl")
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    _exit_now(code)


def _exit_now(code: object) -> None:
    """Flush stdout and stderr, then end the process with `code` (SystemExit's conventions)."""
    import os
    import sys

    from accelctl.cli._errors import ExitCode

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")  # SystemExit("message") prints it and exits 1
        code = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = int(ExitCode.BROKEN_PIPE)
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)

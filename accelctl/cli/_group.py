"""The root command group: how every invocation is parsed, run and ended.

* Global options (``--fixture``, ``--sysfs-root``, ``--accel-id``, ``--debug``) may come before or
  after the command words: ``accelctl list --fixture one-card`` is ``accelctl --fixture one-card
  list``. A command that defines an option of the same name keeps it (``sim serve --fixture``).
  ``--json``, every printing command's option, may come before the command words too.
* The command path (``addr show``) is recorded for the JSON envelope (`_output.emit_json`).
* One exit path: library errors become messages and documented exit codes (`_errors`); usage
  errors are typer's text, or the documented JSON error object when ``--json`` was asked for; a
  closed stdout (``accelctl list | head -1``) ends the command quietly with 141, wherever the
  write that found it happened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from accelctl.cli import _output as out
from accelctl.cli._errors import ExitCode, exit_code_for, is_usage_error, report_error


class AccelGroup(TyperGroup):
    """The root group of the accelctl app."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        out.begin_invocation(wants_json=asks_for_json(argv))
        from accelctl.cli._examples import attach

        attach(self)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            if not isinstance(code, int):
                code = 0  # a command's return value is not an exit code
            flush_stdout()
        except BrokenPipeError:
            code = _broken_pipe()
        except SystemExit:
            if not _typer_saw_broken_pipe():
                raise
            code = _broken_pipe()
        except Exception as err:  # noqa: BLE001 - typer's own errors, raised by standalone_mode=False
            if not _is_typer_error(err):
                raise
            code = _usage_error(err)
        except typer.Abort:
            sys.stderr.write("accelctl: aborted\n")
            code = int(ExitCode.REFUSED)
        if not standalone_mode:
            return code
        sys.exit(code)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        args, path = self.hoist_global_options(ctx, args)
        out.set_command(" ".join(path))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # here, not in typer's handler (which exits 1): one exit path, 141
            raise typer.Exit(_broken_pipe()) from None
        except KeyboardInterrupt:
            sys.stderr.write("accelctl: interrupted\n")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as err:  # noqa: BLE001 - this is the single choke point by design
            state = ctx.obj
            if getattr(state, "debug", False) or is_usage_error(err):
                raise
            err = _named_file_error(err)
            code = exit_code_for(err)
            report_error(err, code, as_json=out.json_requested() or bool(getattr(state, "json_errors", False)))
            raise typer.Exit(int(code)) from None

    # --- global options anywhere ------------------------------------------------------------

    def hoist_global_options(self, ctx: typer.Context, args: list[str]) -> tuple[list[str], list[str]]:
        """`args` with the global options found after the command words moved in front of them,
        and the command words (``["addr", "show"]``)."""
        flags, valued = self._global_option_names()
        front: list[str] = []
        rest: list[str] = []
        path: list[str] = []
        command: Any = self
        leaf_options: set[str] = set()
        #: --json typed before the command words (``accelctl --json list``): every command that
        #: prints has it, so it moves behind them, as kubectl's -o does wherever it is typed
        early_json: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                break
            if arg == "--json" and not path:
                early_json.append(arg)
                i += 1
                continue
            name = arg.split("=", 1)[0]
            takes_value = name in valued and "=" not in arg
            if (name in flags or name in valued) and name not in leaf_options:
                # before the command this is where it belongs; after it, it moves there
                front.extend(args[i:i + 1 + takes_value])
                i += 1 + takes_value
                continue
            if not arg.startswith("-") and isinstance(command, TyperGroup):
                sub = command.get_command(ctx, arg)
                if sub is not None and not rest_has_positional(rest, path):
                    path.append(arg)
                    command = sub
                    leaf_options = {o for p in getattr(sub, "params", []) for o in getattr(p, "opts", [])}
            rest.append(arg)
            i += 1
        if early_json and "--json" not in leaf_options:
            front.extend(early_json)  # not this command's option: typer says so, as before
        else:
            rest.extend(early_json)
        return front + rest + args[i:], path

    def _global_option_names(self) -> tuple[set[str], set[str]]:
        flags: set[str] = set()
        valued: set[str] = set()
        for param in self.params:
            opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            if getattr(param, "is_eager", False):
                continue  # --version, --help: only before the command, as typer has them
            (flags if getattr(param, "is_flag", False) else valued).update(opts)
        return flags, valued


def _named_file_error(err: Exception) -> Exception:
    """An OSError about a file (a path typed on the command line that does not exist, is a
    directory, cannot be written) as a typed error: a clear message and exit 6 (4 without
    permission), not "internal error". Commands convert the files they know; this catches the rest."""
    filename = getattr(err, "filename", None)
    if not isinstance(err, OSError) or filename is None or isinstance(err, BrokenPipeError):
        return err
    from accelctl.cli._errors import file_error

    return file_error(err, filename, "open")


def rest_has_positional(rest: list[str], path: list[str]) -> bool:
    """Whether a word that is not a command name came after the command words (then a later
    word equal to a command name is an argument, not a command)."""
    words = [a for a in rest if not a.startswith("-")]
    return len(words) > len(path)


def asks_for_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON output (so even a usage error is JSON)."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    for i, arg in enumerate(args):
        if arg == "--json" or arg in ("--format=json", "-fjson"):
            return True
        if arg in ("--format", "-f") and i + 1 < len(args) and args[i + 1] == "json":
            return True
    return False


def flush_stdout() -> None:
    sys.stdout.flush()


def _typer_saw_broken_pipe() -> bool:
    # typer handles EPIPE outside a command (help text into `head`) by wrapping stdout and
    # exiting 1; that is still a broken pipe.
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def _broken_pipe() -> int:
    if _typer_saw_broken_pipe():
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    # Point stdout at /dev/null so no later flush (the interpreter's at exit) fails again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return int(ExitCode.BROKEN_PIPE)


def _is_typer_error(err: BaseException) -> bool:
    # typer's errors (usage, bad parameter, file) share the base ClickException; it is reached
    # by name through the MRO, so we never import typer's private click copy.
    return any(c.__name__ == "ClickException" for c in type(err).__mro__)


def _usage_error(err: Exception) -> int:
    code = int(getattr(err, "exit_code", ExitCode.USAGE))
    if out.json_requested() and type(err).__name__ != "NoArgsIsHelpError":
        report_error(err, ExitCode(code) if code in ExitCode._value2member_map_ else ExitCode.USAGE,
                     as_json=True, message=getattr(err, "format_message", lambda: str(err))())
    else:
        err.show()  # type: ignore[attr-defined]  # typer's usage text: "Usage: ... Error: ..."
    return code

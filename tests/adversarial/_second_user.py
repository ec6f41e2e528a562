"""Run a piece of a test as another local user: a forked child that drops to a throwaway uid.

Only root can do this (os.setuid); tests that need a second user skip cleanly elsewhere. The uid
needs no passwd entry: the kernel only knows numbers.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import pytest

#: A uid and gid no real account uses on these machines.
OTHER_UID = 54_321
OTHER_GID = 54_321

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user (setuid)")


def run_as_other_user(fn: Callable[[], object], *, uid: int = OTHER_UID, gid: int = OTHER_GID) -> None:
    """Run ``fn`` in a forked child as ``uid``/``gid``; re-raise its failure here as an
    AssertionError with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            fn()
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            os.write(write_end, traceback.format_exc().encode()[-8000:])
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        report = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AssertionError(f"as uid {uid}: {report or f'exit status {status}'}")

"""Running accelctl as a user does: a real process, real pipes and the real environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def accelctl(*args: str, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE,
             stdin: int | None = subprocess.DEVNULL, input: bytes | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """`accelctl ARGS` in a child process; `env` is added to (None values removed from) ours."""
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-m", "accelctl", *args], stdout=stdout, stderr=subprocess.PIPE,
        stdin=None if input is not None else stdin, input=input.decode() if input is not None else None,
        env=full, text=True, timeout=600, cwd=REPO,
    )


def at_terminal(*args: str, columns: int = 80, env: dict[str, str] | None = None,
                stream: str = "stdout") -> tuple[int, str, str]:
    """`accelctl ARGS` with `stream` (stdout or stderr) on a real pseudo-terminal `columns`
    wide: (exit code, what the terminal got, what the other stream, a pipe, got). $COLUMNS is
    unset, so the width comes from the terminal, as for a user."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # keep "\n" as the program wrote it
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    full = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    full.update({"NO_COLOR": "1", "TERM": "xterm", **(env or {})})
    streams = {"stdout": slave, "stderr": subprocess.PIPE} if stream == "stdout" else \
        {"stdout": subprocess.PIPE, "stderr": slave}
    proc = subprocess.Popen([sys.executable, "-m", "accelctl", *args], **streams,
                            stdin=subprocess.DEVNULL, env=full, cwd=REPO)
    os.close(slave)
    piped = proc.stdout if stream == "stderr" else proc.stderr
    # the pipe is read in a thread: a command that fills it would block before closing the terminal
    import threading

    pipe_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: pipe_chunks.append(piped.read() if piped else b""))
    reader.start()
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    reader.join()
    proc.wait(timeout=600)
    return proc.returncode, b"".join(chunks).decode(), b"".join(pipe_chunks).decode()

"""Seeded fuzzing of the daemon's control path: random commands, payloads, JSON shapes and
attached descriptors, from several connections, against a daemon process. The daemon must answer
or drop the sender, never die, leak no descriptor, and keep serving an honest client.

A short run is part of the suite; the long one (minutes) runs with
``python3 -m pytest -m long tests/adversarial``.
"""

from __future__ import annotations

import array
import json
import os
import random
import socket

import pytest

from accelctl.protocol import abi

from ._daemon import BDF, DaemonProcess, Memfd, admin_request, assert_survived, stop_cleanly

_JSON_COMMANDS = (abi.CtrlCmd.VERSION, abi.CtrlCmd.FAULT)
_FIELDS = ("abi", "add", "clear", "bdf", "kind", "delay_ms", "probability", "new_serial", "qid", "opcode",
           "nth", "count", "seed", "now", "extra")
#: Only kinds that do not exist: a valid fault armed on the admin socket is the owner's own
#: decision to hurt every session, which is what the admin socket is for.
_KINDS = ("bogus", "", "SLOW", "drop-cqe", "daemon death")


def _value(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(10 if depth < 3 else 6)
    if choice == 0:
        return rng.choice([None, True, False])
    if choice == 1:
        return rng.choice([-1, 0, 1, 2**31, 2**64, -(2**70), rng.randrange(-1000, 1000)])
    if choice == 2:
        return rng.choice([0.5, -1.5, 1e300, -0.0, 3.0])
    if choice == 3:
        return rng.choice(_KINDS)
    if choice == 4:
        return "x" * rng.randrange(0, 60)
    if choice == 5:
        return rng.choice(["0000:41:00.0", BDF, "aa-bb", "\u00e9\u00e9"])
    if choice in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(_FIELDS): _value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _payload(rng: random.Random, cmd: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:
        depth = rng.choice([3, 10, 1000, 30_000])
        return (b"[" * depth + b"]" * depth)[: rng.randrange(1, 2 * depth + 1)]
    if kind == 2 and cmd in _JSON_COMMANDS:
        return json.dumps(_value(rng)).encode()
    if kind == 3:  # a struct of the right size with random contents
        size = {abi.CtrlCmd.REG_READ: 8, abi.CtrlCmd.REG_WRITE: 16, abi.CtrlCmd.DMA_MAP: 32,
                abi.CtrlCmd.DMA_UNMAP: 16, abi.CtrlCmd.SET_IRQS: 8, abi.CtrlCmd.SET_KICKS: 8,
                abi.CtrlCmd.RESET: 4, abi.CtrlCmd.PASSTHRU: 72, abi.CtrlCmd.MEM_ALLOC: 24,
                abi.CtrlCmd.MEM_FREE: 8}.get(cmd, 8)
        return rng.randbytes(size)
    if kind == 4:
        return b'{"abi": [1, 1]}'
    return b""


def _fds(rng: random.Random) -> list[int]:
    out: list[int] = []
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 9])):
        k = rng.randrange(4)
        if k == 0:
            out.append(os.eventfd(0, os.EFD_CLOEXEC))
        elif k == 1:
            m = Memfd(4096)
            m.view.release()
            m.mm.close()
            out.append(m.fd)
        elif k == 2:
            r, w = os.pipe()
            os.close(w)
            out.append(r)
        else:
            out.append(os.memfd_create("unsealed", os.MFD_CLOEXEC))
    return out


def _fuzz(messages: int, seed: int) -> None:
    rng = random.Random(seed)
    daemon = DaemonProcess()
    try:
        baseline = admin_request(daemon, abi.CtrlCmd.INTROSPECT, b"")["open_fds"]
        conns: list[socket.socket] = []
        for i in range(messages):
            if not conns or rng.random() < 0.05:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
                s.connect(daemon.socket(rng.choice([BDF])) if rng.random() < 0.9 else daemon.admin_socket)
                s.settimeout(30)
                conns.append(s)
            s = rng.choice(conns)
            cmd = rng.choice(list(abi.CtrlCmd) + [0, 99, 0xFFFF])
            payload = _payload(rng, cmd)
            size = abi.CTRL_HEADER_SIZE + len(payload)
            if rng.random() < 0.05:
                size = rng.randrange(0, 1 << 32)  # a lie
            flags = rng.choice([0, 0, 0, abi.CtrlFlags.NO_REPLY, abi.CtrlFlags.REPLY, 0xFFFF])
            header = abi.CTRL_HEADER.pack(i & 0xFFFF, int(cmd), size, int(flags), 0)
            fds = _fds(rng)
            try:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
                s.sendmsg([header + payload], anc)
                if not flags & abi.CtrlFlags.NO_REPLY:
                    data, anc_in, _f, _a = s.recvmsg(abi.CTRL_MAX_MSG_SIZE, socket.CMSG_SPACE(64))
                    for level, kind, raw in anc_in:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            got = array.array("i")
                            got.frombytes(raw[: len(raw) - len(raw) % 4])
                            for fd in got:
                                os.close(fd)
                    if not data:
                        raise ConnectionResetError
            except (ConnectionError, BrokenPipeError, TimeoutError, OSError):
                conns.remove(s)  # dropped: a protocol error (its own fault)
                s.close()
            finally:
                for fd in fds:
                    os.close(fd)
            if i % 200 == 199:
                assert_survived(daemon)
        for s in conns:
            s.close()
        admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": None, "clear": True})
        assert_survived(daemon)
        # every connection's descriptors went back (released on EOF); allow the checks' own
        for _ in range(1000):
            now = admin_request(daemon, abi.CtrlCmd.INTROSPECT, b"")
            if now["open_fds"] <= baseline + 1 and not now["endpoints"][BDF]["sessions"]:
                break
        assert now["open_fds"] <= baseline + 1, (baseline, now["open_fds"])
    finally:
        stop_cleanly(daemon)


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_control_messages_short(seed):
    _fuzz(400, seed)


@pytest.mark.long
@pytest.mark.parametrize("seed", range(10, 20))
def test_fuzzed_control_messages_long(seed):
    _fuzz(20_000, seed)

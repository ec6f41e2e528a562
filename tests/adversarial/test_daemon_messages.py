"""One hostile message must not take the simulator daemon down for everyone (issue 14).

Each test sends what killed or froze the daemon before (a separate process), checks that the
sender alone got an error, and that an honest client on the same endpoint is still served.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from accelctl.protocol import abi

from ._daemon import BDF, CtrlError, DaemonProcess, RawClient, admin_request, assert_survived


@pytest.fixture
def short_workdir():
    d = Path(tempfile.mkdtemp(prefix="asim-st-"))  # AF_UNIX paths are short: not pytest's tmp_path
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _refused(client: RawClient, cmd: int, payload: bytes) -> int:
    with pytest.raises(CtrlError) as info:
        client.request(cmd, payload)
    return info.value.errno


def test_deeply_nested_version_is_refused(daemon):
    """VERSION with 60,000 nested '[' hit a RecursionError in the control loop."""
    with RawClient(daemon.socket()) as attacker:
        assert _refused(attacker, abi.CtrlCmd.VERSION, b"[" * 60_000) == errno.EINVAL
        assert _refused(attacker, abi.CtrlCmd.VERSION, b'{"abi": ' + b"[" * 5000 + b"]" * 5000 + b"}") == errno.EINVAL
        # the attacker's own connection still works afterwards: only the message was refused
        assert attacker.json(abi.CtrlCmd.VERSION, {"abi": [1, 1]})["abi"][0] == 1
    assert_survived(daemon)


@pytest.mark.parametrize("payload", [
    b'{"abi": "1"}', b'{"abi": [1, "x"]}', b'{"abi": [true, 0]}', b'{"abi": [1, 1], "extra": 1}',
    b"\xff\xfe", b'{"abi": [1, NaN]}', b"[1, 1]", b'{"abi": [' + b"9" * 5000 + b", 0]}",
])
def test_malformed_version_is_refused(daemon, payload):
    with RawClient(daemon.socket()) as attacker:
        assert _refused(attacker, abi.CtrlCmd.VERSION, payload) in (errno.EINVAL, errno.EPROTO)
    assert_survived(daemon)


@pytest.mark.parametrize("request_body", [
    {"add": 5},
    {"add": [5]},
    {"add": [{"kind": "slow", "delay_ms": -1}]},
    {"add": [{"kind": "slow", "delay_ms": "x"}]},
    {"add": [{"kind": "slow", "delay_ms": 1e300}]},
    {"add": [{"kind": "drop_cqe", "probability": "x"}]},
    {"add": [{"kind": "drop_cqe", "probability": 2}]},
    {"add": [{"kind": "reset_fail", "probability": "x"}]},
    {"add": [{"kind": "new_serial", "new_serial": 12345}]},
    {"add": [{"kind": "new_serial", "new_serial": "x" * 100}]},
    {"add": [{"kind": "drop_cqe", "opcode": "1"}]},
    {"add": [{"kind": "drop_cqe", "opcode": True}]},
    {"add": [{"kind": "drop_cqe", "qid": 1 << 70}]},
    {"add": [{"kind": "drop_cqe", "nth": 0.5}]},
    {"add": [{"kind": "drop_cqe", "seed": "s"}]},
    {"add": [{"kind": "drop_cqe", "now": "yes"}]},
    {"add": [{"kind": ["slow"]}]},
    {"add": [{"kind": "drop_cqe"}] * 100},
    {"clear": "yes"},
    {"bdf": 7, "add": []},
    {"bdf": "0000:99:00.0", "add": []},
])
def test_malformed_fault_is_refused_before_it_is_armed(daemon, request_body):
    """Each of these was accepted and then killed a thread: TypeError at RESET, an engine thread
    dead on a bad delay, IDENTIFY crashing forever on a persisted integer serial."""
    body = dict(request_body)
    body.setdefault("bdf", BDF)
    with pytest.raises(Exception) as info:
        admin_request(daemon, abi.CtrlCmd.FAULT, body)
    assert getattr(info.value, "errno", None) == errno.EINVAL, info.value
    assert admin_request(daemon, abi.CtrlCmd.FAULT, {"bdf": BDF})["faults"] == []  # nothing was armed
    # what used to trip over the bad spec: a reset, IO commands, IDENTIFY
    with RawClient(daemon.socket()) as c:
        c.request(abi.CtrlCmd.RESET, abi.CTRL_RESET.pack(abi.ResetScope.DEVICE))
    assert_survived(daemon)


def test_deep_fault_json_is_refused(daemon):
    deep = b'{"bdf": "' + BDF.encode() + b'", "add": [' + b"[" * 60_000 + b"]" * 60_000 + b"]}"
    with pytest.raises(Exception) as info:
        admin_request(daemon, abi.CtrlCmd.FAULT, deep[: abi.CTRL_MAX_MSG_SIZE - abi.CTRL_HEADER_SIZE])
    assert getattr(info.value, "errno", None) == errno.EINVAL
    assert_survived(daemon)


def test_persisted_bad_serial_does_not_break_identify_after_restart(short_workdir):
    """`new_serial: 12345` used to be persisted, then IDENTIFY crashed on every call, across
    restarts. The spec is refused now (above); a state file that holds one anyway is ignored."""
    work = short_workdir
    DaemonProcess(workdir=work).stop()
    state_file = work / "state" / (BDF.replace(":", "_") + ".json")
    data = json.loads(state_file.read_text())
    data["serial"] = 12345
    state_file.write_text(json.dumps(data))
    d = DaemonProcess(workdir=work)
    try:
        from accelctl.driver.session import Session

        with Session(d.socket()) as dev:
            assert dev.identify()["serial"] == "aa-00-00-00-00-00-00-01"
        assert_survived(d)
    finally:
        d.stop()

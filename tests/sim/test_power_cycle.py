"""One rule for device state (firmware.py, docs/simulator.md): a daemon's exit and the next start
are a power cycle exactly like a device reset. Memory, identity, reset generation, lifetime
counters and the error log are kept across both; features return to power-on values on both;
each power-on counts one power cycle.

Before: memory survived a restart, set-feature did not, power_cycles climbed on every command
(each had its own daemon) and bytes_written stayed 0 (the counters were never kept).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from accelctl.protocol import abi
from accelctl.sim.device.config import EndpointConfig
from accelctl.sim.device.firmware import DEFAULT_TEMPERATURE_THRESHOLD_K, Firmware

DEVICE = "card0.ep0"


def run(env, *args: str, stdin: bytes = b"", ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "accelctl", "--fixture", "one-card", *args], env=env,
                       capture_output=True, input=stdin, timeout=120)
    if ok:
        assert r.returncode == 0, (args, r.stderr)
    return r


def health(env) -> dict:
    return json.loads(run(env, "admin", "log", DEVICE, "--json").stdout)["content"]


def threshold(env) -> int:
    return json.loads(run(env, "admin", "get-feature", DEVICE, "temperature-threshold", "--json").stdout)["value"]


def reset_generation(env) -> int:
    return json.loads(run(env, "admin", "identify", DEVICE, "--json").stdout)["controller"]["reset_generation"]


def error_log(env) -> list:
    return json.loads(run(env, "admin", "log", DEVICE, "-p", "error", "--json").stdout)["content"]


def daemon_pid(env) -> int:
    r = subprocess.run([sys.executable, "-m", "accelctl", "sim", "status", "--fixture", "one-card", "--json"],
                       env=env, capture_output=True, timeout=60)
    return json.loads(r.stdout)["machine"]["pid"]


def test_many_commands_and_concurrent_ones_are_one_power_on(env):
    assert health(env)["power_cycles"] == 1
    procs = [subprocess.Popen([sys.executable, "-m", "accelctl", "--fixture", "one-card", "io", "write", DEVICE,
                               "--address", hex(i * 4096)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
    for i, p in enumerate(procs):
        _, err = p.communicate(input=b"x" * (100 + i), timeout=120)
        assert p.returncode == 0, err
    for _ in range(3):
        run(env, "admin", "identify", DEVICE)
    h = health(env)
    assert h["power_cycles"] == 1  # was: one more per command
    assert h["write_commands"] == 4 and h["bytes_written"] == 100 + 101 + 102 + 103  # was: 0


def test_a_daemon_restart_keeps_what_a_device_keeps_and_resets_the_rest(env):
    run(env, "io", "write", DEVICE, "--address", "0x2000", stdin=b"survives")
    run(env, "admin", "set-feature", DEVICE, "temperature-threshold", "340")
    run(env, "io", "read", DEVICE, "--address", hex(1 << 40), "-n", "4", ok=False)  # one error logged
    before, gen, errors = health(env), reset_generation(env), error_log(env)
    assert threshold(env) == 340 and before["bytes_written"] == 8 and before["error_log_entries"] == 1

    stop = subprocess.run([sys.executable, "-m", "accelctl", "sim", "stop", "--fixture", "one-card"], env=env,
                          capture_output=True, timeout=60)
    assert stop.stdout == b"stopped\n", stop.stderr

    after = health(env)
    assert run(env, "io", "read", DEVICE, "--address", "0x2000", "-n", "8").stdout == b"survives"
    assert threshold(env) == DEFAULT_TEMPERATURE_THRESHOLD_K  # a feature is volatile
    assert after["power_cycles"] == before["power_cycles"] + 1
    assert reset_generation(env) == gen + 1
    assert after["unsafe_shutdowns"] == 0
    for name in ("bytes_written", "bytes_read", "write_commands", "read_commands", "error_log_entries"):
        assert after[name] >= before[name], name  # lifetime counts: kept (the reads above add)
    assert after["bytes_written"] == before["bytes_written"]
    assert error_log(env) == errors


def test_a_killed_daemon_counts_an_unsafe_shutdown_and_keeps_finished_commands(env):
    run(env, "io", "write", DEVICE, stdin=b"12345")
    os.kill(daemon_pid(env), signal.SIGKILL)
    h = health(env)
    assert h["unsafe_shutdowns"] == 1
    assert h["power_cycles"] == 2
    assert h["bytes_written"] == 5  # saved when that command's session ended


# --- the same rule for both kinds of power cycle, compared field by field ----------------------


def _device_view(fw: Firmware) -> dict:
    """Everything a client can read of the firmware, but the clock."""
    health = list(abi.HEALTH_LOG.unpack(fw.health_log()))
    del health[5 + abi.HEALTH_COUNTERS.index("power_on_seconds")]
    features = {int(f): fw.get_feature(int(f)) for f in abi.Feature if fw.get_feature(int(f)) is not None}
    return {
        "identify": fw.identify_controller(), "endpoint": fw.identify_endpoint(), "health": health,
        "errors": fw.error_log_page(), "features": features, "memory": bytes(fw.memory[:64]),
    }


def _used(fw: Firmware) -> None:
    fw.memory[:5] = b"hello"
    fw.set_feature(abi.Feature.LOGICAL_ADDRESS, 0x0102)
    fw.set_feature(abi.Feature.TEMPERATURE_THRESHOLD, 300)
    fw.set_feature(abi.Feature.POWER_STATE, int(list(abi.PowerState)[-1]))
    fw.counters["bytes_written"] += 5
    fw.counters["write_commands"] += 1
    fw.record_error(1, 7, 0x4281, 1, 0x100, 8)


@pytest.mark.parametrize("cycle", ["device-reset", "daemon-restart"])
def test_both_power_cycles_keep_and_reset_the_same_things(tmp_path: Path, cycle: str):
    config = EndpointConfig("0000:03:00.0", serial="aa-bb-cc-dd-ee-ff-00-01", memory_size=1 << 20)
    results = {}
    for kind in ("device-reset", "daemon-restart"):
        state = tmp_path / kind
        fw = Firmware(config, state)
        _used(fw)
        if kind == "device-reset":
            fw.device_reset()
            fw.counters["device_resets"] -= 1  # the one count a reset adds that a restart does not
        else:
            fw.close()
            fw = Firmware(config, state)
        results[kind] = _device_view(fw)
        fw.close()
    assert results["device-reset"] == results["daemon-restart"]
    kept = results[cycle]
    assert kept["memory"].startswith(b"hello")
    assert kept["features"][abi.Feature.TEMPERATURE_THRESHOLD] == DEFAULT_TEMPERATURE_THRESHOLD_K
    assert kept["features"][abi.Feature.LOGICAL_ADDRESS] == 0x0102

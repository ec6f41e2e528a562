"""`accelctl bench` end to end: a real subprocess, a simulator daemon in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys



def _bench(tmp_path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ACCELCTL_RUNTIME_DIR=str(tmp_path / "run"))
    return subprocess.run(
        [sys.executable, "-m", "accelctl", "--fixture", "one-card", "bench",
         "--seconds", "0.2", "--iterations", "200", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_bench_json_reports_every_measure_and_honest_verdicts(tmp_path):
    proc = _bench(tmp_path, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    r = json.loads(proc.stdout)
    # a failed target is a failed run for scripts: exit 1, never 0 with FAIL printed
    assert proc.returncode == (0 if r["all_targets_pass"] else 1)
    assert r["machine"]["kind"] == "fixture" and r["machine"]["name"] == "one-card"
    assert r["schema_version"] == 2 and r["daemon"] == "separate process"
    # the endpoint in the one vocabulary (was "device"): the fixture's only one, by bdf and name
    assert "device" not in r and r["name"] == "card0.ep0" and r["bdf"].endswith(":01:00.0")
    floor = r["platform"]
    assert 0 < floor["spin_round_trip_us"] < r["sync_latency_us"]["poll"]["p50"]
    assert floor["eventfd_wakeup_us"] > 0 and floor["samples"] > 0
    assert floor["steal_pct"] is None or 0 <= floor["steal_pct"] <= 100
    above = r["where_time_goes"]
    assert above["poll_p50_above_spin_floor_us"] == round(
        r["sync_latency_us"]["poll"]["p50"] - floor["spin_round_trip_us"], 2)
    for mode in ("interrupt", "poll"):
        lat = r["sync_latency_us"][mode]
        assert 0 < lat["p50"] <= lat["p99"] and lat["samples"] == 200
    assert r["throughput_cmds_per_s"] > r["ioctl_baseline_cmds_per_s"] > 0
    assert r["throughput_failed_cmds"] == 0  # every counted command completed successfully
    for size in ("1MiB", "64MiB"):
        assert r["dma_write_gbs"][size] > 0 and r["dma_read_gbs"][size] > 0 and r["memcpy_gbs"][size] > 0
    assert set(r["targets"]) == {
        "throughput_vs_ioctl", "dma_write_64mib_vs_memcpy", "dma_read_64mib_vs_memcpy",
        "poll_p50_us", "interrupt_p50_us", "throughput_cmds_per_s",
    }
    for name, t in r["targets"].items():
        bound_ok = t["value"] >= t["min"] if "min" in t else t["value"] <= t["max"]
        assert t["pass"] == bound_ok, name
    assert r["targets"]["poll_p50_us"]["value"] == r["sync_latency_us"]["poll"]["p50"]
    assert r["all_targets_pass"] == all(t["pass"] for t in r["targets"].values())
    # The daemon it started for the run is gone again.
    assert not any((tmp_path / "run").glob("*/*.sock"))


def test_bench_renders_for_people(tmp_path):
    proc = _bench(tmp_path)
    assert proc.returncode == (1 if "FAIL" in proc.stdout else 0), proc.stderr
    assert "fixture one-card: device 0000:" in proc.stdout
    assert "sync latency" in proc.stdout and "targets:" in proc.stdout and "eventfd wake-up" in proc.stdout
    assert proc.stdout.count("PASS") + proc.stdout.count("FAIL") == 6


def test_bench_on_a_live_machine_refuses_instead_of_measuring_a_fixture(tmp_path):
    env = dict(os.environ, ACCELCTL_RUNTIME_DIR=str(tmp_path / "run"), ACCELCTL_SYSFS_ROOT="/sys")
    proc = subprocess.run([sys.executable, "-m", "accelctl", "bench", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 5, (proc.returncode, proc.stderr)
    assert proc.stdout == "" and "live machine" in json.loads(proc.stderr)["error"]["message"]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*/*.sock"))

"""`accelctl metrics --listen`: scraped by a real Prometheus server (Debian's package) on
loopback, queried over its HTTP API; and the same numbers as the textfile form."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.fleet.conftest import cli  # noqa: E402

#: Guards against a hang only; nothing is asserted about how fast anything is.
HANG_GUARD_S = 120


def start_metrics_server(root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelctl", "--sysfs-root", str(root), "metrics", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # "serving metrics on http://127.0.0.1:PORT/metrics"
    assert "serving metrics on http://127.0.0.1:" in line, line + proc.stderr.read()
    return proc, line.split()[-1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback only
        return resp.read().decode()


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_exposition_carries_the_textfile_numbers(fixture_root):
    root = fixture_root("fault-downtrained")
    proc, url = start_metrics_server(root)
    try:
        served = {f.name: f for f in text_string_to_metric_families(get(url))}
        again = {f.name: f for f in text_string_to_metric_families(get(url))}
    finally:
        assert stop(proc) == 0  # SIGTERM is how a DaemonSet stops it: not a failure
    r = cli("--sysfs-root", str(root), "metrics")
    assert r.exit_code == 0
    textfile = {f.name: f for f in text_string_to_metric_families(r.stdout)}
    assert set(textfile) <= set(served)
    for name, fam in textfile.items():
        assert fam.type == served[name].type, name
        assert sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in fam.samples) == sorted(
            (s.name, tuple(sorted(s.labels.items())), s.value) for s in served[name].samples), name
    assert served == again
    width = {s.labels["bdf"]: s.value for s in served["accelctl_link_width"].samples}
    assert width == {"0000:03:00.0": 16, "0000:04:00.0": 8, "0000:05:00.0": 4}  # fault-downtrained.toml


def test_each_scrape_reads_the_machine_afresh(fixture_copy):
    from accelctl.platform.fixture_mutate import bump_aer
    from accelctl.sysfs import SysfsRoot

    root = fixture_copy("one-card")
    proc, url = start_metrics_server(root)
    try:
        def rx() -> float:
            fam = {f.name: f for f in text_string_to_metric_families(get(url))}["accelctl_aer_errors"]
            (s,) = [s for s in fam.samples if s.labels["error"] == "RxErr" and s.labels["endpoint"] == "0"]
            return s.value
        before = rx()
        bump_aer(SysfsRoot(str(root)), "0000:01:00.0", "RxErr", by=5)
        assert rx() == before + 5
    finally:
        stop(proc)


@pytest.mark.parametrize("addr", ["localhost", "127.0.0.1:99999", "1.2.3.4.5"])
def test_bad_listen_address_exits_2(addr, fixture_root):
    r = cli("--sysfs-root", str(fixture_root("one-card")), "metrics", "--listen", addr)
    assert r.exit_code == 2 and "HOST:PORT" in r.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="no prometheus binary (apt-get install prometheus; .ci/run tries)")
def test_a_real_prometheus_scrapes_and_finds_the_downtrained_links(fixture_root, tmp_path):
    metrics, url = start_metrics_server(fixture_root("fault-downtrained"))
    target = urllib.parse.urlparse(url).netloc
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: accelctl
    static_configs:
      - targets: ["{target}"]
""")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(promql: str) -> list[dict]:
        doc = json.loads(get(api + urllib.parse.quote(promql)))
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    try:
        deadline = time.monotonic() + HANG_GUARD_S
        result: list[dict] = []
        while time.monotonic() < deadline:
            assert prom.poll() is None, prom.stderr.read()
            try:
                result = query("accelctl_link_downtrained == 1")
            except OSError:
                result = []  # Prometheus still starting
            if result:
                break
            time.sleep(0.5)
        assert result, "Prometheus never returned a downtrained link"
        # fault-downtrained.toml: card1 trained x8 of x16, card2 x4 of x16 (below root port 00:02.1)
        assert sorted(r["metric"]["bdf"] for r in result) == ["0000:04:00.0", "0000:05:00.0"]
        assert {r["metric"]["card"] for r in result} == {"1", "2"}
        assert all(r["metric"]["model"] and r["metric"]["serial"] for r in result)
        ports = query("accelctl_root_port_link_downtrained == 1")
        assert [(r["metric"]["bdf"], r["metric"]["card"]) for r in ports] == [("0000:00:02.1", "2")]
        (up,) = query('up{job="accelctl"}')
        assert up["value"][1] == "1"
    finally:
        prom.terminate()
        prom.wait(timeout=HANG_GUARD_S)
        assert stop(metrics) == 0

"""Runtime-directory squatting: another local user makes our runtime directory first.

Without $XDG_RUNTIME_DIR (sudo, cron, containers) the simulator's runtime directory is
$TMPDIR/accelctl-<uid>, a name anyone can predict and create. What must hold: we never use a
directory that is not ours alone, and never follow a link to open the pidfile, the log or the
device-memory files, so a squatter can neither redirect our writes nor serve us a daemon.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from accelctl.errors import UnsafePathError
from accelctl.sim import service
from accelctl.sim.device import EndpointConfig
from accelctl.sim.private_dir import open_private_file, private_dir

from ._second_user import OTHER_UID, needs_root, run_as_other_user

fixture_mod = pytest.importorskip("accelctl.sim.fixture")
BDF = "0000:01:00.0"  # the endpoint of the bundled one-card fixture


@pytest.fixture
def shared_tmp():
    """A directory like /tmp: world-writable and sticky, reachable by the second user."""
    d = Path(tempfile.mkdtemp(prefix="accelctl-adv-", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.fixture
def one_card():
    return fixture_mod.bundled_fixture_root("one-card")


def _victim_env(tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ACCELCTL_RUNTIME_DIR", "XDG_RUNTIME_DIR")}
    env["TMPDIR"] = str(tmpdir)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


@needs_root
def test_squatted_runtime_dir_is_refused_and_no_planted_link_is_followed(shared_tmp, one_card, tmp_path):
    """The attack of issue 14: the squatter plants links where our pidfile and device memory go;
    `io write` used to truncate one victim file and grow the other to the device's size."""
    precious = tmp_path / "precious.txt"  # files only the victim (root) may write
    precious.write_text("do not touch\n")
    config = tmp_path / "config.json"
    config.write_text('{"important": true}\n')
    runtime = shared_tmp / f"accelctl-{os.geteuid()}"
    instance = runtime / service.instance_key(one_card)

    def squat() -> None:
        os.umask(0)
        runtime.mkdir(0o777)
        instance.mkdir(0o777)
        (instance / "state").mkdir(0o777)
        (instance / "daemon.pid").symlink_to(config)
        (instance / "daemon.log").symlink_to(config)
        (instance / "state" / f"{BDF.replace(':', '_')}.mem").symlink_to(precious)
        (instance / "state" / f"{BDF.replace(':', '_')}.json").symlink_to(config)

    run_as_other_user(squat)
    assert runtime.stat().st_uid == OTHER_UID

    proc = subprocess.run(
        [sys.executable, "-m", "accelctl", "--sysfs-root", str(one_card), "io", "write", "card0"],
        input=b"secret data", capture_output=True, env=_victim_env(shared_tmp), timeout=120,
    )
    assert precious.read_text() == "do not touch\n" and precious.stat().st_size == 13
    assert config.read_text() == '{"important": true}\n'
    assert proc.returncode == 8, proc.stderr.decode()  # REFUSED (docs/exit-codes.md)
    err = proc.stderr.decode()
    assert f"refusing to use {runtime}" in err and f"uid {OTHER_UID}" in err and "Traceback" not in err


@needs_root
def test_squatter_cannot_serve_us_a_daemon(shared_tmp, one_card, monkeypatch):
    """A runtime dir made (and kept) by another user is refused before any socket in it is
    looked at: status() does not report the squatter's daemon, nothing starts there."""
    runtime = shared_tmp / f"accelctl-{os.geteuid()}"

    def squat() -> None:
        runtime.mkdir(0o700)

    run_as_other_user(squat)
    monkeypatch.delenv("ACCELCTL_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(shared_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(UnsafePathError, match=f"owned by uid {OTHER_UID}"):
        service.status(one_card)
    with pytest.raises(UnsafePathError):
        service.start_embedded(one_card, [EndpointConfig(bdf="0000:01:00.0")])


# --- the rules, one by one (no second user needed) ---------------------------------------------


def test_a_fresh_runtime_dir_is_made_private(tmp_path):
    d = private_dir(tmp_path / "run")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_uid == os.geteuid()


def test_our_dir_readable_by_others_is_tightened(tmp_path):
    (tmp_path / "run").mkdir(0o755)
    os.chmod(tmp_path / "run", 0o755)
    private_dir(tmp_path / "run")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700


def test_our_dir_writable_by_others_is_refused_not_repaired(tmp_path):
    (tmp_path / "run").mkdir()
    os.chmod(tmp_path / "run", 0o777)
    with pytest.raises(UnsafePathError, match="others can write it"):
        private_dir(tmp_path / "run")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o777


def test_a_link_in_place_of_the_dir_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir(0o700)
    (tmp_path / "run").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError, match="link"):
        private_dir(tmp_path / "run")


def test_a_world_writable_parent_without_sticky_bit_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone may rename our directory away and put theirs in its place
    with pytest.raises(UnsafePathError, match="writable by others"):
        private_dir(shared / "run")


def test_a_sticky_world_writable_parent_is_fine(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    assert private_dir(shared / "run").is_dir()


def test_pidfile_link_inside_our_own_dir_is_not_followed(tmp_path, monkeypatch, one_card):
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    target = tmp_path / "victim"
    target.write_text("keep")
    inst = private_dir(service.runtime_dir() / service.instance_key(one_card))
    (inst / "daemon.pid").symlink_to(target)
    with pytest.raises(UnsafePathError, match="link"):
        service.start_embedded(one_card, [EndpointConfig(bdf="0000:01:00.0")])
    assert target.read_text() == "keep"


def test_log_link_inside_our_own_dir_is_not_followed(tmp_path, monkeypatch, one_card):
    """`sim serve` hands daemon.log to the daemon as its stderr: a link there would have the
    daemon append to the file it names."""
    monkeypatch.setenv("ACCELCTL_RUNTIME_DIR", str(tmp_path / "run"))
    target = tmp_path / "victim"
    target.write_text("keep")
    inst = private_dir(service.runtime_dir() / service.instance_key(one_card))
    (inst / "daemon.log").symlink_to(target)
    r = subprocess.run([sys.executable, "-m", "accelctl", "--sysfs-root", str(one_card), "sim", "serve"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 8, (r.returncode, r.stderr)
        assert "daemon.log: it is a link" in r.stderr
        assert target.read_text() == "keep"
    finally:
        service.stop(str(one_card))


def test_a_fifo_in_place_of_a_file_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "daemon.pid")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_private_file(tmp_path / "daemon.pid", os.O_RDONLY)


def test_device_memory_file_link_is_not_followed(tmp_path):
    from accelctl.sim.device import DeviceDaemon, EndpointConfig

    state = tmp_path / "state"
    state.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"x" * 10)
    (state / "0000_03_00.0.mem").symlink_to(victim)
    with pytest.raises(UnsafePathError):
        DeviceDaemon([EndpointConfig("0000:03:00.0", memory_size=1 << 20)], tmp_path / "sock", state_dir=state)
    assert victim.read_bytes() == b"x" * 10

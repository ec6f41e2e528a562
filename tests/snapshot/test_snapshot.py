"""Snapshot capture and replay: live /sys, hand-made trees, hostile archives."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from accelctl.errors import SnapshotError
from accelctl.snapshot import snapshot_tree, take_snapshot
from accelctl.sysfs import SysfsRoot
from tests.snapshot._cli import run, topology_json
from tests.snapshot._trees import tiny_tree as _tiny_tree


def _members(path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_capture_policy_on_a_tiny_tree(tmp_path):
    root = _tiny_tree(tmp_path)
    out = tmp_path / "tiny.tar.gz"
    info = take_snapshot(SysfsRoot(root), out)
    names = _members(out)
    base = "sysfs/devices/pci0000:00/0000:00:01.0"
    assert f"{base}/config" in names and f"{base}/vendor" in names
    assert names["sysfs/bus/pci/devices/0000:00:01.0"].issym()
    for never in ("resource0", "rom", "reset", "escape", "net/statistics"):
        assert f"{base}/{never}" not in names, never
    with tarfile.open(out) as tar:
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isreg())
    assert b"SECRET-DEVICE-MEMORY" not in blob
    meta = info.meta
    assert meta["kernel"]["release"] and meta["counts"]["functions"] == 1
    assert any(u["path"].endswith("/escape") for u in meta["unreadable"])
    reasons = {s["reason"] for s in meta["skipped"]}
    assert any("device memory" in r for r in reasons) and any("write-only" in r for r in reasons)
    assert topology_json("--sysfs-root", str(out)) == topology_json("--sysfs-root", root)


@pytest.mark.live
def test_live_sys_round_trip(tmp_path):
    if not os.path.isdir("/sys/bus/pci/devices") or not os.listdir("/sys/bus/pci/devices"):
        pytest.skip("no PCI devices in /sys here")
    out = tmp_path / "live.tar.gz"
    r = run("--sysfs-root", "/sys", "snapshot", str(out), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["snapshot"]["kernel"]["release"] == os.uname().release
    assert doc["size_bytes"] < 5 * 1024 * 1024
    assert topology_json("--sysfs-root", "/sys") == topology_json("--sysfs-root", str(out))
    live = run("--sysfs-root", "/sys", "list", "--all", "--json")
    replay = run("--sysfs-root", str(out), "list", "--all", "--json")
    assert live.returncode == replay.returncode == 0
    assert json.loads(live.stdout) == json.loads(replay.stdout)


def _autosuspend_files_failing_with_eio() -> list[str]:
    import errno
    import glob

    failing = []
    for path in glob.glob("/sys/bus/pci/devices/*/power/autosuspend_delay_ms"):
        try:
            with open(path) as f:
                f.read()
        except OSError as err:
            if err.errno == errno.EIO:
                failing.append(path)
    return failing


@pytest.mark.live
def test_live_capture_does_not_warn_about_the_kernels_normal_eio(tmp_path):
    """A healthy machine's power/autosuspend_delay_ms answers EIO whenever autosuspend is off;
    `snapshot` of a healthy live /sys warned "8 entries could not be read" for those."""
    if not _autosuspend_files_failing_with_eio():
        pytest.skip("no power/autosuspend_delay_ms here answers EIO")
    out = tmp_path / "live.tar.gz"
    r = run("--sysfs-root", "/sys", "snapshot", str(out), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["snapshot"]
    assert not [u for u in doc["unreadable"] if u["path"].endswith("autosuspend_delay_ms")]
    assert "could not be read" not in r.stderr
    assert any("autosuspend" in s["reason"] for s in doc["skipped"])


def test_refuses_to_overwrite_without_force(tmp_path):
    root = _tiny_tree(tmp_path)
    out = tmp_path / "x.tar.gz"
    out.write_text("precious")
    r = run("--sysfs-root", root, "snapshot", str(out))
    assert r.returncode == 1 and "exists" in r.stderr
    assert out.read_text() == "precious"
    assert run("--sysfs-root", root, "snapshot", str(out), "--force").returncode == 0
    assert tarfile.is_tarfile(out)


def test_the_library_refuses_an_existing_output_too(tmp_path):
    # the check lives below the CLI: a program calling take_snapshot gets the same protection
    from accelctl.errors import OutputPathError

    root = SysfsRoot(_tiny_tree(tmp_path))
    out = tmp_path / "x.tar.gz"
    out.write_text("precious")
    with pytest.raises(OutputPathError, match="exists"):
        take_snapshot(root, out)
    assert out.read_text() == "precious"
    assert take_snapshot(root, out, overwrite=True).entries > 0 and tarfile.is_tarfile(out)
    with pytest.raises(OutputPathError, match="is a directory"):
        take_snapshot(root, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sys", "x.tar.gz"]  # no temp file left


@pytest.mark.parametrize(("where", "says"), [
    ("{tmp}", "is a directory"),
    ("{tmp}/no/such/dir/x.tar.gz", "does not exist"),
])
def test_an_unusable_output_path_is_a_clear_error(tmp_path, where, says):
    root = _tiny_tree(tmp_path)
    r = run("--sysfs-root", root, "snapshot", where.format(tmp=tmp_path), "--json")
    assert r.returncode == 1, r.stderr
    err = json.loads(r.stderr)["error"]
    assert err["type"] == "OutputPathError" and says in err["message"] and r.stdout == ""


def test_second_replay_uses_the_cache(tmp_path):
    root = _tiny_tree(tmp_path)
    out = tmp_path / "c.tar.gz"
    take_snapshot(SysfsRoot(root), out)
    first = snapshot_tree(out)
    marker = first.parent / ".accelctl-complete"
    mtime = marker.stat().st_mtime_ns
    assert snapshot_tree(out) == first and marker.stat().st_mtime_ns == mtime


# -- hostile archives ------------------------------------------------------------------------


def _evil(path, members: list[tuple[str, str, str | bytes]]) -> None:
    """members: (name, kind, target-or-data)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "hard":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


EVIL = {
    "dotdot": [("sysfs", "dir", ""), ("sysfs/../../pwned", "file", "x")],
    "absolute": [("/tmp/pwned-abs", "file", "x")],
    "abs-link": [("sysfs", "dir", ""), ("sysfs/l", "link", "/etc")],
    "escaping-link": [("sysfs", "dir", ""), ("sysfs/l", "link", "../../..")],
    "write-through-link": [
        ("sysfs", "dir", ""),
        ("sysfs/l", "link", "."),
        ("sysfs/l/x", "file", "x"),
    ],
    "hardlink": [("sysfs", "dir", ""), ("sysfs/h", "hard", "/etc/passwd")],
    "fifo": [("sysfs", "dir", ""), ("sysfs/f", "fifo", "")],
    "foreign": [("etc/passwd", "file", "x")],
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_hostile_archive_is_refused(tmp_path, case):
    path = tmp_path / f"{case}.tar.gz"
    _evil(path, EVIL[case])
    with pytest.raises(SnapshotError):
        snapshot_tree(path)
    # nothing of it was left in the cache either
    cache = os.environ["ACCELCTL_CACHE_DIR"]
    leftovers = [d for d in os.listdir(os.path.join(cache, "snapshots")) if d.startswith(".unpack-")]
    assert leftovers == []
    assert not os.path.exists("/tmp/pwned-abs")


def test_hostile_archive_exit_code(tmp_path):
    path = tmp_path / "evil.tar.gz"
    _evil(path, EVIL["escaping-link"])
    r = run("--sysfs-root", str(path), "list")
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert "outside" in r.stderr


def test_garbage_file_is_bad_input(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    r = run("--sysfs-root", str(path), "list")
    assert r.returncode == 6, (r.returncode, r.stderr)

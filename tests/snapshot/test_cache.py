"""The cache of unpacked snapshots stays bounded: least recently used and old entries go, an
unpack killed half-way is cleaned up on the next use, and nothing in use is removed.

Issue 12: every replay unpacked ~280 MB per 1.2 MB archive into ~/.cache/accelctl/snapshots/
and nothing ever removed it; issue 14: a killed unpack left `.unpack-*` behind for good.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelctl.snapshot import take_snapshot
from accelctl.snapshot.cache import CACHE_MB_ENV, USED
from accelctl.sysfs import SysfsRoot
from tests.snapshot._cli import run
from tests.snapshot._trees import tiny_tree

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    # these tests count entries: a cache of their own, not the session's shared one
    monkeypatch.setenv("ACCELCTL_CACHE_DIR", str(tmp_path / "cache"))


def _cache() -> Path:
    return Path(os.environ["ACCELCTL_CACHE_DIR"]) / "snapshots"


def _entries() -> set[str]:
    return {n for n in os.listdir(_cache()) if not n.startswith(".")} if _cache().is_dir() else set()


def _archive(tmp_path: Path, tag: str, files: int = 0) -> Path:
    """A distinct snapshot; `files` extra attribute files make its unpacked size ~4 KiB each."""
    base = tmp_path / tag
    base.mkdir()
    root = Path(tiny_tree(base))
    dev = root / "devices" / "pci0000:00" / "0000:00:01.0"
    (dev / "label").write_text(f"{tag}\n")
    if files:
        extra = dev / "power"
        extra.mkdir()
        for i in range(files):
            (extra / f"attr{i}").write_text("x\n")
    out = tmp_path / f"{tag}.tar.gz"
    take_snapshot(SysfsRoot(root), out)
    return out


def _replay(archive: Path, env: dict[str, str] | None = None) -> str:
    """Replay in a separate process (each CLI run is one; this process holds no lock)."""
    r = run("--sysfs-root", str(archive), "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return _newest_entry()


def _newest_entry() -> str:
    return max(_entries(), key=lambda n: (_cache() / n / USED).stat().st_mtime_ns)


def test_least_recently_used_entries_go_when_the_cache_is_full(tmp_path):
    # ~300 files each: ~1.3 MB unpacked, so a 3 MiB cache holds two
    a, b, c = (_archive(tmp_path, t, files=300) for t in "abc")
    env = {CACHE_MB_ENV: "3"}
    ea = _replay(a, env)
    eb = _replay(b, env)
    time.sleep(0.01)
    assert _replay(a, env) == ea  # a is now the more recently used
    ec = _replay(c, env)
    assert _entries() == {ea, ec}, "b, the least recently used, should have made room for c"
    assert eb not in _entries()


def test_default_bound_keeps_small_entries(tmp_path):
    names = {_replay(_archive(tmp_path, t)) for t in "abc"}
    assert len(names) == 3 and _entries() == names


def test_entries_unused_for_a_month_are_removed(tmp_path):
    old = _replay(_archive(tmp_path, "old"))
    recent = _replay(_archive(tmp_path, "recent"))
    month_ago = time.time() - 31 * 86400
    os.utime(_cache() / old / USED, (month_ago, month_ago))
    day_ago = time.time() - 86400
    os.utime(_cache() / recent / USED, (day_ago, day_ago))
    new = _replay(_archive(tmp_path, "new"))
    assert _entries() == {recent, new}


_HOLD = """
import sys
from accelctl.snapshot.replay import snapshot_tree
print(snapshot_tree(sys.argv[1]), flush=True)
sys.stdin.read()
"""

_STALL_MID_UNPACK = """
import sys
from accelctl.snapshot import replay
real_write = replay._Writer.write
state = {"n": 0}
def write(self, *args):
    real_write(self, *args)
    state["n"] += 1
    if state["n"] == 5:
        print(self.base, flush=True)
        sys.stdin.read()  # stalled half-way, until killed
replay._Writer.write = write
replay.snapshot_tree(sys.argv[1])
"""


def _start(script: str, archive: Path) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, "-c", script, str(archive)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": REPO},
    )
    line = p.stdout.readline().strip()
    assert line, "the child did not get going"
    return p, line


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait()


def test_an_unpack_killed_half_way_is_removed_on_next_use(tmp_path):
    first, second = _archive(tmp_path, "first"), _archive(tmp_path, "second")
    p, unpack_dir = _start(_STALL_MID_UNPACK, first)
    try:
        assert Path(unpack_dir).name.startswith(".unpack-")
        _replay(second)
        assert Path(unpack_dir).is_dir(), "an unpack in progress must not be removed"
    finally:
        _kill(p)
    assert Path(unpack_dir).is_dir()  # SIGKILL leaves it behind...
    _replay(_archive(tmp_path, "third"))
    assert not Path(unpack_dir).exists()  # ...and the next use removes it
    assert not [n for n in os.listdir(_cache()) if n.startswith((".unpack-", ".trash-"))]


def test_an_entry_in_use_is_never_evicted(tmp_path):
    held_archive = _archive(tmp_path, "held")
    p, tree = _start(_HOLD, held_archive)
    held = Path(tree).parent.name
    try:
        _replay(_archive(tmp_path, "other"), {CACHE_MB_ENV: "0"})
        assert held in _entries() and Path(tree, "devices").is_dir()
    finally:
        _kill(p)
    _replay(_archive(tmp_path, "later"), {CACHE_MB_ENV: "0"})
    assert held not in _entries()


@pytest.mark.parametrize("value", ["lots", "-5"])
def test_a_bad_bound_falls_back_to_a_sane_one(tmp_path, value):
    names = {_replay(_archive(tmp_path, t), {CACHE_MB_ENV: value}) for t in "ab"}
    assert len(names) == 2 and _entries() == names  # the default bound (1 GiB) holds both

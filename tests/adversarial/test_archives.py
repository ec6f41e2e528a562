"""Hostile snapshot archives: what an archive from anywhere can do to the machine replaying it.

What must hold (docs/security.md): nothing outside the unpacked tree is ever read or written;
a link is judged by where it resolves on disk, not by its text; an archive that claims more
than the bounds is refused before the work (within a memory and CPU budget, nothing written);
a damaged or truncated archive is an input error (exit 6), never a replay of half a machine.
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile

import pytest

from accelctl.errors import SnapshotError
from accelctl.snapshot import policy
from accelctl.snapshot.replay import snapshot_tree
from tests.snapshot._cli import run

from ._archives import (
    DEVICE,
    bomb,
    dir_member,
    link_member,
    long_header,
    many_entries,
    resolution_escape,
    unpack_in_budget,
    valid_archive,
    with_extra_members,
)


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    # what an archive leaves in the cache is part of what is checked: a cache per test
    monkeypatch.setenv("ACCELCTL_CACHE_DIR", str(tmp_path / "cache"))


def _cache_names() -> list[str]:
    d = os.path.join(os.environ["ACCELCTL_CACHE_DIR"], "snapshots")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


# -- links that escape by resolution ------------------------------------------------------------


def test_link_escaping_by_resolution_never_shows_host_files(tmp_path):
    """Issue 14: `reset_method` reached a host file through `up -> ..`; its text came out as
    `reset_methods: ["TOP-SECRET-..."]`."""
    secret = tmp_path / "host-secret"
    secret.write_text("TOP-SECRET-7c1e\n")
    archive = with_extra_members(
        valid_archive(tmp_path), tmp_path / "escape.tar.gz", resolution_escape(DEVICE, "reset_method", str(secret))
    )
    r = run("--sysfs-root", str(archive), "topology", "--json")
    assert "TOP-SECRET" not in r.stdout + r.stderr
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert "outside the tree" in r.stderr and "reset_method" in r.stderr


@pytest.mark.parametrize("target", ["/proc/kmsg", "/etc/passwd", "/dev/zero"])
def test_no_link_may_resolve_out_of_the_tree(tmp_path, target):
    """`config` pointed at /proc/kmsg consumed the kernel log as root; a FIFO there hung."""
    archive = with_extra_members(
        valid_archive(tmp_path), tmp_path / "escape.tar.gz", resolution_escape(DEVICE, "numa_node", target),
    )
    with pytest.raises(SnapshotError, match="outside the tree"):
        snapshot_tree(archive)
    assert _cache_names() == []  # nothing kept, not even a half-unpacked directory


def test_links_inside_the_tree_still_replay(tmp_path):
    """The check is not a blanket refusal: a chain of links that ends inside, and links that
    resolve to nothing (like firmware_node into ACPI, which a snapshot leaves out) are kept."""
    extra = [
        link_member(f"{DEVICE}/hop", "../0000:00:01.0"),
        link_member(f"{DEVICE}/via_hop", "hop/vendor"),
        link_member(f"{DEVICE}/firmware_node", "../../LNXSYSTM:00/device:00"),
        link_member(f"{DEVICE}/loop_a", "loop_b"),
        link_member(f"{DEVICE}/loop_b", "loop_a"),
    ]
    archive = with_extra_members(valid_archive(tmp_path), tmp_path / "ok.tar.gz", extra)
    tree = snapshot_tree(archive)
    dev = tree.parent / DEVICE
    assert (dev / "via_hop").read_text() == "0x1e52\n"
    assert not (dev / "firmware_node").exists()


@pytest.mark.parametrize(
    "members, words",
    [
        ([dir_member("sysfs/a"), link_member("sysfs/a/up", ".."), link_member("sysfs/b", "a/up/../..")], "outside"),
        ([link_member("sysfs/l", "../snapshot.json")], "outside the tree"),
        ([link_member("sysfs/l", "/etc")], "absolute"),
        ([link_member("sysfs/l", "."), dir_member("sysfs/l/x")], "below the symlink"),
    ],
    ids=["chain-above-root", "to-the-manifest", "absolute", "member-below-link"],
)
def test_link_rules(tmp_path, members, words):
    archive = with_extra_members(valid_archive(tmp_path), tmp_path / "bad.tar.gz", members)
    with pytest.raises(SnapshotError, match=words):
        snapshot_tree(archive)


# -- bounded work --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu-longname", "pax-header"])
def test_header_bomb_is_refused_within_a_memory_and_cpu_budget(tmp_path, kind):
    """Issue 14: a 1 MB GNU long-name archive took 6.1 GB and 40 s; a pax header one 2 GB and
    240 s (and left .unpack-* behind). Here one header claims 1 GiB, all of it present as
    compressed zeros: the unpacker must say no in 768 MB of address space and 60 s of CPU."""
    archive = bomb(tmp_path / "bomb.tar.gz", long_header(kind, 1 << 30), 1 << 30)
    assert archive.stat().st_size < 2 << 20
    watched = tmp_path / "cache"
    result = unpack_in_budget(archive, memory_mb=768, cpu_s=60, env={"ACCELCTL_CACHE_DIR": str(watched)})
    assert result["outcome"] == "refused", result
    assert "extended header" in result["message"]
    assert not (watched / "snapshots").exists() or os.listdir(watched / "snapshots") == []


def test_too_many_entries_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    """Issue 14: 2 M small entries took 5 minutes before refusal, 1 M were accepted and cached
    for good. The count is checked while reading, before the first file is created."""
    archive = many_entries(tmp_path / "many.tar.gz", policy.MAX_ENTRIES + 2)  # + sysfs/ = one too many
    watched = tmp_path / "cache"
    result = unpack_in_budget(archive, memory_mb=768, cpu_s=120, env={"ACCELCTL_CACHE_DIR": str(watched)})
    assert result["outcome"] == "refused", result
    assert "more than" in result["message"] and "members" in result["message"]
    # pass one (checking) refused it: not even the unpack directory was made
    assert not (watched / "snapshots").exists() or os.listdir(watched / "snapshots") == []


def test_deadline_bounds_the_time(tmp_path):
    from accelctl.snapshot.tarstream import TarLimits

    with pytest.raises(SnapshotError, match="took longer than"):
        snapshot_tree(valid_archive(tmp_path), tar_limits=TarLimits(max_seconds=-1))


# -- damaged archives ------------------------------------------------------------------------------


def _cut_at_a_member(full, out, *, compress: bool):
    """`full` cut where a member starts (at a header: tarfile then ends quietly, as if the
    archive were complete), then compressed again or not."""
    raw = gzip.decompress(full.read_bytes())
    with tarfile.open(full) as t:
        offsets = [m.offset for m in t.getmembers()]
    cut = raw[: offsets[len(offsets) // 2]]
    out.write_bytes(gzip.compress(cut) if compress else cut)
    return out


def _fixture_archive(tmp_path, name="two-socket"):
    full = tmp_path / f"{name}.tar.gz"
    r = run("--fixture", name, "snapshot", str(full))
    assert r.returncode == 0, r.stderr
    return full


def test_diag_on_a_truncated_archive_is_bad_input(tmp_path):
    """Issue 12: diag said PASS with 62 'device removed while reading' warnings."""
    cut = _cut_at_a_member(_fixture_archive(tmp_path), tmp_path / "cut.tar.gz", compress=True)
    r = run("--sysfs-root", str(cut), "diag")
    assert r.returncode == 6, (r.returncode, r.stdout[-500:], r.stderr)
    assert "PASS" not in r.stdout
    assert "truncated" in r.stderr


def test_a_cut_compressed_stream_is_bad_input(tmp_path):
    full = _fixture_archive(tmp_path)
    cut = tmp_path / "half.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    r = run("--sysfs-root", str(cut), "list", "--json")
    assert r.returncode == 6
    err = json.loads(r.stderr)["error"]
    assert err["type"] == "SnapshotError" and str(cut) in err["message"]


def test_an_uncompressed_archive_cut_at_a_member_boundary_is_refused(tmp_path):
    """tarfile ends quietly at a missing header; a snapshot must end with its end-of-archive block."""
    cut = _cut_at_a_member(valid_archive(tmp_path), tmp_path / "cut.tar", compress=False)
    with pytest.raises(SnapshotError, match="truncated"):
        snapshot_tree(cut)

"""Persisted map (atomic, locked, corrupt/foreign files), diff, and the `accelctl addr` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelctl.cli.app import app
from tests._wait import HANG_GUARD_S, wait_until
from tests.addressing.specs import sn

runner = CliRunner()


def cli(root: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["--sysfs-root", str(root), "addr", *args], env=env)


@pytest.fixture
def machine(tmp_path):
    """One machine (a directory standing in for its /sys) whose hardware the test changes:
    `machine(tree)` makes its tree a copy of `tree` and returns its path, which stays the same."""
    import shutil

    where = tmp_path / "machine"

    def become(tree: Path) -> Path:
        shutil.rmtree(where, ignore_errors=True)
        # hard links: nothing here writes the tree, and a real copy of 2,000 files is slow
        subprocess.run(["cp", "-al", str(tree), str(where)], check=True)
        return where

    return become


def only_map(state: Path) -> Path:
    """The one address map under the state directory `state` (whatever machine it is filed under)."""
    (found,) = list(state.rglob("address-map.json"))
    return found


def test_show_json_document(trees, tmp_path):
    r = cli(trees["base"], "show", "--json", "--state-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1
    assert doc["persisted"] is None and doc["differences"] is None
    assert doc["state"]["status"] == "absent"
    assert doc["endpoints"][6] == {
        "name": "card3.ep0",
        "bdf": "0000:0c:00.0",
        "card": 3,
        "endpoint": 0,
        "global_id": 6,
        "serial": sn(0x3000),
        "position": "0000:00/04.1/00.0",
    }
    assert [c["name"] for c in doc["cards"]] == [f"card{i}" for i in range(6)]


def test_show_honours_visible_devices(trees, tmp_path):
    r = cli(trees["base"], "show", "--json", "--state-dir", str(tmp_path), env={"ACCELCTL_VISIBLE_DEVICES": "card3,1"})
    doc = json.loads(r.stdout)
    assert [e["name"] for e in doc["endpoints"]] == ["card0.ep1", "card3.ep0", "card3.ep1"]
    assert [c["name"] for c in doc["cards"]] == ["card0", "card3"]
    bad = cli(trees["base"], "show", "--json", "--state-dir", str(tmp_path), env={"ACCELCTL_VISIBLE_DEVICES": "card9"})
    assert bad.exit_code == 3  # not found, never "all devices"
    assert json.loads(bad.stderr)["error"]["type"] == "DeviceNotFoundError"


def test_assign_then_diff_same_machine(trees, tmp_path):
    r = cli(trees["base"], "assign", "--state-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    doc = json.loads(only_map(tmp_path).read_text())
    assert doc["format"] == "accelctl-address-map" and doc["format_version"] == 2
    assert doc["machine"]["kind"] == "directory" and doc["machine"]["name"] == str(trees["base"])
    assert len(doc["endpoints"]) == 10
    d = cli(trees["base"], "diff", "--json", "--state-dir", str(tmp_path))
    assert d.exit_code == 0, d.output
    assert json.loads(d.stdout)["differences"] == []
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def test_each_machine_keeps_its_own_map(trees, tmp_path):
    """A map assigned on one tree is never another tree's: each directory is its own machine,
    and diff on a tree without a map says so instead of comparing with another's."""
    assert cli(trees["base"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    other = cli(trees["swapped"], "diff", "--state-dir", str(tmp_path))
    assert other.exit_code == 6, other.output
    assert "no persisted address map for directory" in other.stderr
    assert cli(trees["swapped"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    assert len(list(tmp_path.rglob("address-map.json"))) == 2
    assert not (tmp_path / "address-map.json").exists()  # the live machine's place stays free
    assert cli(trees["base"], "diff", "--state-dir", str(tmp_path)).exit_code == 0


def test_a_map_of_another_machine_is_refused_not_compared(trees, tmp_path):
    """A map copied to where another machine's belongs (or a version-1 map a fixture run wrote
    in the live machine's place) is refused with ForeignMapError (exit 6), never diffed, and
    never overwritten without --force."""
    assert cli(trees["base"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    base_map = only_map(tmp_path)
    assert cli(trees["swapped"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    swapped_map = next(p for p in tmp_path.rglob("address-map.json") if p != base_map)
    swapped_map.write_text(base_map.read_text())
    d = cli(trees["swapped"], "diff", "--json", "--state-dir", str(tmp_path))
    assert d.exit_code == 6, d.output
    assert d.stdout == ""
    err = json.loads(d.stderr)["error"]
    assert err["type"] == "ForeignMapError" and "another machine" in err["message"]
    show = json.loads(cli(trees["swapped"], "show", "--json", "--state-dir", str(tmp_path)).stdout)
    assert show["state"]["status"] == "foreign" and show["differences"] is None
    assert cli(trees["swapped"], "assign", "--state-dir", str(tmp_path)).exit_code == 6
    assert swapped_map.read_text() == base_map.read_text()
    assert cli(trees["swapped"], "assign", "--force", "--state-dir", str(tmp_path)).exit_code == 0
    assert cli(trees["swapped"], "diff", "--state-dir", str(tmp_path)).exit_code == 0


def test_diff_detects_swapped_cards_by_serial(trees, tmp_path, machine):
    assert cli(machine(trees["base"]), "assign", "--state-dir", str(tmp_path)).exit_code == 0
    d = cli(machine(trees["swapped"]), "diff", "--json", "--state-dir", str(tmp_path))
    assert d.exit_code == 1
    diffs = json.loads(d.stdout)["differences"]
    assert [(x["kind"], x["before"], x["after"], x["identity"]) for x in diffs] == [
        ("swapped", "card1", "card2", f"serial:{sn(0x2000)}"),
        ("swapped", "card2", "card1", f"serial:{sn(0x2100)}"),
    ]


def test_diff_detects_renumbered_buses_and_new_cards(trees, tmp_path, machine):
    assert cli(machine(trees["base"]), "assign", "--state-dir", str(tmp_path)).exit_code == 0
    d = cli(machine(trees["switched_nic"]), "diff", "--json", "--state-dir", str(tmp_path))
    assert d.exit_code == 1
    (moved,) = json.loads(d.stdout)["differences"]
    assert (moved["kind"], moved["before"], moved["after"]) == ("moved", "card3", "card3")
    assert "0000:0c:00.0, 0000:0c:00.1 -> 0000:0f:00.0, 0000:0f:00.1" in moved["message"]

    d = cli(machine(trees["new_card"]), "diff", "--json", "--state-dir", str(tmp_path))
    kinds = [(x["kind"], x["before"], x["after"]) for x in json.loads(d.stdout)["differences"]]
    assert kinds == [
        ("moved", "card3", "card4"),
        ("moved", "card4", "card5"),
        ("moved", "card5", "card6"),
        ("appeared", None, "card3"),
    ]


def test_diff_detects_vanished_card(trees, tmp_path, machine):
    assert cli(machine(trees["new_card"]), "assign", "--state-dir", str(tmp_path)).exit_code == 0
    d = cli(machine(trees["base"]), "diff", "--json", "--state-dir", str(tmp_path))
    kinds = [(x["kind"], x["before"], x["after"]) for x in json.loads(d.stdout)["differences"]]
    assert ("vanished", "card3", None) in kinds


def test_show_reports_persisted_map_and_differences(trees, tmp_path, machine):
    assert cli(machine(trees["base"]), "assign", "--state-dir", str(tmp_path)).exit_code == 0
    doc = json.loads(cli(machine(trees["swapped"]), "show", "--json", "--state-dir", str(tmp_path)).stdout)
    assert doc["state"]["status"] == "ok"
    assert doc["persisted"]["endpoints"][4]["serial"] == sn(0x2000)
    assert doc["endpoints"][4]["serial"] == sn(0x2100)
    assert [d["kind"] for d in doc["differences"]] == ["swapped", "swapped"]


def test_diff_without_map_is_an_error(trees, tmp_path):
    d = cli(trees["base"], "diff", "--state-dir", str(tmp_path))
    assert d.exit_code == 6
    assert "no persisted address map" in d.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{ this is not json", "corrupt address map"),
        ('{"hello": "world"}', "not an accelctl address map"),
        ('{"format": "accelctl-address-map", "format_version": 99}', "format_version 99"),
        ('{"format": "accelctl-address-map", "format_version": 1, "order": "position"}', "corrupt address map"),
    ],
)
def test_corrupt_or_foreign_map_is_never_overwritten_silently(trees, tmp_path, content, message):
    assert cli(trees["base"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    path = only_map(tmp_path)
    path.write_text(content)
    r = cli(trees["base"], "assign", "--state-dir", str(tmp_path))
    assert r.exit_code == 6, r.output
    assert message in r.stderr and "--force" in r.stderr
    assert path.read_text() == content
    show = cli(trees["base"], "show", "--json", "--state-dir", str(tmp_path))
    assert show.exit_code == 0
    assert json.loads(show.stdout)["state"]["status"] == "unreadable"
    assert cli(trees["base"], "diff", "--state-dir", str(tmp_path)).exit_code == 6
    forced = cli(trees["base"], "assign", "--force", "--state-dir", str(tmp_path))
    assert forced.exit_code == 0
    assert json.loads(path.read_text())["format"] == "accelctl-address-map"


def test_state_dir_from_environment(trees, tmp_path):
    r = cli(trees["base"], "assign", env={"ACCELCTL_STATE_DIR": str(tmp_path / "s")})
    assert r.exit_code == 0, r.output
    assert only_map(tmp_path / "s").is_file()


def test_bad_order_for_machine_is_reported(trees, tmp_path):
    r = cli(trees["base"], "show", "--order", "slot", "--state-dir", str(tmp_path))
    assert r.exit_code == 2  # usage: the machine cannot satisfy --order
    assert "cannot order by slot" in r.stderr


_HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from accelctl.addressing.state import locked
    with locked(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    """
)


def _blocked_on_a_flock(pid: int) -> bool:
    """The kernel lists `pid` as waiting for a flock (a "->" line of /proc/locks)."""
    with open("/proc/locks") as f:
        return any(line.split()[1] == "->" and line.split()[5] == str(pid) for line in f if "->" in line)


def test_assign_waits_for_the_lock(trees, tmp_path):
    # no clock: the kernel shows assign blocked on the lock while another process holds it, and
    # assign finishes once it is let go. The map is filed per machine: make it, then lock its dir.
    assert cli(trees["base"], "assign", "--state-dir", str(tmp_path)).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(only_map(tmp_path).parent)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assign = None
    try:
        assert holder.stdout.readline().strip() == "locked"
        assign = subprocess.Popen(
            [sys.executable, "-m", "accelctl", "--sysfs-root", str(trees["base"]), "addr", "assign",
             "--state-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: _blocked_on_a_flock(assign.pid) or assign.poll() is not None)
        assert assign.poll() is None, f"assign did not wait for the lock: {assign.communicate()}"
        holder.stdin.close()
        out, err = assign.communicate(timeout=HANG_GUARD_S)
        assert assign.returncode == 0, err
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if assign is not None and assign.poll() is None:
            assign.kill()


def test_concurrent_assigns_leave_one_whole_map(trees, tmp_path):
    # real processes through the installed entry point: all succeed, the file is always whole
    cmd = [sys.executable, "-m", "accelctl", "--sysfs-root", str(trees["base"]), "addr", "assign",
           "--state-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    path = only_map(tmp_path)
    doc = json.loads(path.read_text())
    assert [e["bdf"] for e in doc["endpoints"]][:2] == ["0000:03:00.0", "0000:04:00.0"]
    assert sorted(os.listdir(path.parent)) == ["address-map.json", "address-map.lock"]


def test_real_subprocess_show_json(trees, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "accelctl", "--sysfs-root", str(trees["base"]), "addr", "show", "--json",
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    doc = json.loads(out.stdout)
    assert [e["bdf"] for e in doc["endpoints"]][-1] == "0001:01:00.0"


def _accelctl(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accelctl", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "ACCELCTL_STATE_DIR": str(state)},
    )


def test_assigning_a_fixture_leaves_the_live_machines_map_alone(tmp_path):
    """The report of issue 12: `--fixture two-socket addr assign` wrote the live machine's map,
    and a plain `addr diff` then reported the fixture's cards as vanished."""
    state = tmp_path / "state"
    live = _accelctl("addr", "assign", "--json", state=state)
    assert live.returncode == 0, live.stderr
    live_map = state / "address-map.json"
    before = live_map.read_text()
    fixture = _accelctl("--fixture", "two-socket", "addr", "assign", state=state)
    assert fixture.returncode == 0, fixture.stderr
    assert live_map.read_text() == before
    diff = _accelctl("addr", "diff", "--json", state=state)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert json.loads(diff.stdout)["differences"] == []
    fixture_diff = _accelctl("--fixture", "two-socket", "addr", "diff", "--json", state=state)
    assert fixture_diff.returncode == 0, fixture_diff.stderr
    assert json.loads(fixture_diff.stdout)["same"] is True


def test_a_version_1_map_a_fixture_wrote_in_the_live_place_is_refused(tmp_path):
    """Maps written before state was kept per machine: one from /sys is the live machine's;
    one from any other tree sits in the live machine's place but is not its map."""
    state = tmp_path / "state"
    state.mkdir()
    legacy = {"format": "accelctl-address-map", "format_version": 1, "written_at": None,
              "sysfs_root": "/home/u/.cache/accelctl/fixtures/two-socket-0123", "order": "position",
              "endpoints": [], "cards": []}
    (state / "address-map.json").write_text(json.dumps(legacy))
    diff = _accelctl("addr", "diff", state=state)
    assert diff.returncode == 6, diff.stderr
    assert "describes another machine" in diff.stderr and "two-socket-0123" in diff.stderr
    legacy["sysfs_root"] = "/sys"
    (state / "address-map.json").write_text(json.dumps(legacy))
    diff = _accelctl("addr", "diff", "--json", state=state)
    assert diff.returncode in (0, 1), diff.stderr  # read and compared (the live machine may have cards)

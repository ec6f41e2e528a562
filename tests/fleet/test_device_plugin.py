"""The kubelet device plugin against a fake kubelet that is a real gRPC server and client on
temporary Unix sockets: registration, the device stream, preferred allocation by the matrix,
allocation, faults injected into a private copy of a fixture, the kubelet restarting, a device
vanishing. Bounds are poll counts kept by the plugin, never the wall clock."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

grpc = pytest.importorskip("grpc")

from accelctl.fleet import build_inventory  # noqa: E402
from accelctl.fleet.deviceplugin import api_pb2  # noqa: E402
from accelctl.fleet.deviceplugin.allocation import Closeness, preferred_allocation  # noqa: E402
from accelctl.fleet.deviceplugin.health import HealthPolicy  # noqa: E402
from accelctl.fleet.deviceplugin.server import DevicePlugin, PluginOptions  # noqa: E402
from accelctl.machine import open_machine  # noqa: E402
from accelctl.platform.fixture_mutate import bump_aer, remove_function, set_link  # noqa: E402
from accelctl.sysfs import SysfsRoot  # noqa: E402
from accelctl.sysfs.devnodes import device_nodes  # noqa: E402
from tests.fleet.conftest import cli  # noqa: E402
from tests.fleet.fake_kubelet import HANG_GUARD_S, FakeKubelet  # noqa: E402

RESOURCE = "accel.example.com/accelerator"
# fixtures/two-socket.toml, by hand: four 4-endpoint MI300X cards; cards 0-1 below socket 0's
# switch (NUMA 0), cards 2-3 below socket 1's (NUMA 1).
CARD = {
    0: ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"],
    1: ["0000:0b:00.0", "0000:0c:00.0", "0000:0d:00.0", "0000:0e:00.0"],
    2: ["0000:85:00.0", "0000:86:00.0", "0000:87:00.0", "0000:88:00.0"],
    3: ["0000:8b:00.0", "0000:8c:00.0", "0000:8d:00.0", "0000:8e:00.0"],
}
ALL = [b for c in range(4) for b in CARD[c]]


@pytest.fixture
def plugin_dir():
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="dp-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def running(fixture_copy, plugin_dir):
    """running(fixture, **options) -> (plugin, kubelet, sysfs root); stopped at the end."""
    made: list[tuple[DevicePlugin, FakeKubelet]] = []

    def start(name: str, *, accel_ids=(), root=None, **opts):  # type: ignore[no-untyped-def]
        root = root or fixture_copy(name)
        machine = open_machine(sysfs_root=root, accel_ids=accel_ids)
        kubelet = FakeKubelet(plugin_dir).start()
        options = PluginOptions(resource_name=RESOURCE, plugin_dir=plugin_dir, poll_interval=0.05, **opts)
        plugin = DevicePlugin(options, snapshot=lambda: build_inventory(machine.rescan()),
                              nodes_of=lambda bdf: device_nodes(machine.root, bdf))
        plugin.start()
        made.append((plugin, kubelet))
        return plugin, kubelet, root
    yield start
    for plugin, kubelet in made:
        plugin.stop()
        kubelet.stop()


def health_of(kubelet: FakeKubelet, bdf: str, want: str) -> list:
    conn = kubelet.latest()
    return kubelet.wait_for(
        lambda: conn.updates and {d: h for d, h, _ in conn.updates[-1]}.get(bdf) == want and conn.updates[-1],
        f"{bdf} {want}")


def transition_poll(plugin: DevicePlugin, bdf: str, health: str, after: int) -> int:
    return next(p for p, b, h in plugin.transitions if b == bdf and h == health and p > after)


def test_registers_streams_and_allocates_by_the_matrix(running):
    plugin, kubelet, _ = running("two-socket", extra_devices=("/dev/kfd",))
    conn = kubelet.latest()
    assert (conn.request.version, conn.request.endpoint, conn.request.resource_name) == (
        "v1beta1", "accelctl.sock", RESOURCE)
    assert conn.request.options.get_preferred_allocation_available
    assert conn.options.get_preferred_allocation_available and not conn.options.pre_start_required
    devices = kubelet.devices()
    assert [d for d, _, _ in devices] == ALL
    assert {h for _, h, _ in devices} == {"Healthy"}
    assert {d: n for d, _, n in devices} == {b: [0 if b < "0000:80" else 1] for b in ALL}

    def prefer(available, size, must=()):  # type: ignore[no-untyped-def]
        req = api_pb2.PreferredAllocationRequest()
        req.container_requests.add(available_deviceIDs=available, must_include_deviceIDs=list(must),
                                   allocation_size=size)
        (resp,) = conn.stub.GetPreferredAllocation(req, timeout=HANG_GUARD_S).container_responses
        return list(resp.deviceIDs)

    assert prefer(ALL, 4) == CARD[0]                             # a whole card
    assert prefer(ALL, 4, must=["0000:86:00.0"]) == CARD[2]      # the card of the one it must have
    assert prefer(CARD[0][:2] + CARD[1], 4) == CARD[1]           # one card beats one switch
    assert prefer(ALL, 8) == CARD[0] + CARD[1]                   # one switch beats two sockets
    # six from one switch, with as many pairs on one card as can be (a whole card 3 + two of card 2)
    assert prefer(CARD[0][:1] + CARD[2][:3] + CARD[3], 6) == CARD[2][:2] + CARD[3]
    # a vanished or unknown id is skipped, not an error for the whole request
    assert prefer(["0000:ff:00.0", *CARD[3][:2], CARD[1][0]], 2) == CARD[3][:2]

    req = api_pb2.AllocateRequest()
    req.container_requests.add(devices_ids=[CARD[1][2], CARD[0][1]])
    (resp,) = conn.stub.Allocate(req, timeout=HANG_GUARD_S).container_responses
    assert dict(resp.envs) == {"ACCELCTL_VISIBLE_DEVICES": f"{CARD[0][1]},{CARD[1][2]}"}
    assert [(d.host_path, d.container_path, d.permissions) for d in resp.devices] == [("/dev/kfd", "/dev/kfd", "rw")]
    bad = api_pb2.AllocateRequest()
    bad.container_requests.add(devices_ids=["0000:ff:00.0"])
    with pytest.raises(grpc.RpcError) as err:
        conn.stub.Allocate(bad, timeout=HANG_GUARD_S)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_preferred_allocation_is_as_close_as_the_best_subset(fixture_root):
    """Against brute force over every subset, with the matrix's levels as the measure."""
    from accelctl.topology import build_topology

    inv = build_inventory(build_topology(fixture_root("two-socket")))
    near = Closeness(inv)
    rng = random.Random(1234)
    for _ in range(60):
        available = rng.sample(ALL, rng.randint(2, 10))
        size = rng.randint(1, min(4, len(available)))
        must = rng.sample(available, rng.randint(0, min(2, size)))
        got = preferred_allocation(inv, available, must, size, near)
        assert len(got) == size and set(must) <= set(got) <= set(available)
        best = min(max((near.between(a, b) for a, b in itertools.combinations(c, 2)), default=0)
                   for c in itertools.combinations(available, size) if set(must) <= set(c))
        worst_pair = max((near.between(a, b) for a, b in itertools.combinations(got, 2)), default=0)
        assert worst_pair == best, (available, must, size, got)


def test_a_narrowed_link_turns_unhealthy_and_back_within_one_poll(running):
    plugin, kubelet, root = running("two-socket")
    bdf = CARD[1][0]
    kubelet.devices()
    before = plugin.polls
    set_link(SysfsRoot(str(root)), bdf, width=8)
    health_of(kubelet, bdf, "Unhealthy")
    # the poll running while the tree changed may have read it before; the next one must see it
    assert transition_poll(plugin, bdf, "Unhealthy", 0) <= before + 2
    others = {d: h for d, h, _ in kubelet.latest().updates[-1] if d != bdf}
    assert set(others.values()) == {"Healthy"}  # one bad device does not take the node down
    before = plugin.polls
    set_link(SysfsRoot(str(root)), bdf, width=16)
    health_of(kubelet, bdf, "Healthy")
    assert transition_poll(plugin, bdf, "Healthy", 0) <= before + 2


def test_climbing_uncorrectable_aer_is_unhealthy_then_recovers_after_quiet_polls(running):
    plugin, kubelet, root = running("two-socket", policy=HealthPolicy(correctable_per_poll=100, recover_polls=2))
    bdf = CARD[2][3]
    kubelet.devices()
    before = plugin.polls
    assert bump_aer(SysfsRoot(str(root)), bdf, "DLP", by=1, attr="aer_dev_nonfatal")
    health_of(kubelet, bdf, "Unhealthy")
    bad_at = transition_poll(plugin, bdf, "Unhealthy", 0)
    assert bad_at <= before + 2
    health_of(kubelet, bdf, "Healthy")
    assert transition_poll(plugin, bdf, "Healthy", bad_at) == bad_at + 2  # recover_polls quiet polls


def test_a_few_correctable_errors_are_not_a_fault(running):
    plugin, kubelet, root = running("two-socket", policy=HealthPolicy(correctable_per_poll=100, recover_polls=2))
    bdf = CARD[0][0]
    kubelet.devices()
    start = plugin.polls
    assert bump_aer(SysfsRoot(str(root)), bdf, "RxErr", by=5)
    kubelet.wait_for(lambda: plugin.polls >= start + 4, "four more polls")
    assert [t for t in plugin.transitions if t[1] == bdf and t[0] > 1] == []
    before = plugin.polls
    assert bump_aer(SysfsRoot(str(root)), bdf, "RxErr", by=150)  # a burst is a fault
    health_of(kubelet, bdf, "Unhealthy")
    assert transition_poll(plugin, bdf, "Unhealthy", 0) <= before + 2


def test_kubelet_restart_removes_the_socket_and_the_plugin_registers_again(running):
    plugin, kubelet, _ = running("two-socket")
    kubelet.devices()
    assert plugin.registrations == 1
    kubelet.restart()  # wipes every socket in the directory, the plugin's too
    kubelet.wait_for(lambda: len(kubelet.connections) == 2, "a second registration")
    assert [d for d, _, _ in kubelet.devices()] == ALL  # the new stream starts with the full list
    # the plugin counts a registration when Register returns, a moment after the kubelet saw it
    kubelet.wait_for(lambda: plugin.registrations == 2, "the plugin to count its second registration")
    assert os.path.exists(plugin.socket_path)
    kubelet.wait_for(lambda: kubelet.connections[0].ended, "the old stream to end")
    req = api_pb2.AllocateRequest()
    req.container_requests.add(devices_ids=[CARD[2][0]])
    (resp,) = kubelet.latest().stub.Allocate(req, timeout=HANG_GUARD_S).container_responses
    assert dict(resp.envs) == {"ACCELCTL_VISIBLE_DEVICES": CARD[2][0]}


def test_a_plugin_started_before_the_kubelet_registers_when_it_comes(fixture_root, plugin_dir):
    machine = open_machine(sysfs_root=fixture_root("one-card"))
    plugin = DevicePlugin(PluginOptions(resource_name=RESOURCE, plugin_dir=plugin_dir, poll_interval=0.05),
                          snapshot=lambda: build_inventory(machine.rescan()))
    plugin.start()
    kubelet = FakeKubelet(plugin_dir)
    try:
        kubelet.wait_for(lambda: plugin.polls >= 3, "three polls")
        assert plugin.registrations == 0  # nothing to register with yet, and no crash
        kubelet.start()
        assert [d for d, _, _ in kubelet.devices()] == ["0000:01:00.0"]
        # counted when Register returns, a moment after the kubelet saw the call
        kubelet.wait_for(lambda: plugin.registrations == 1, "the plugin to count its registration")
    finally:
        plugin.stop()
        kubelet.stop()


def test_a_vanished_device_is_listed_unhealthy_and_the_rest_stay_healthy(running):
    plugin, kubelet, root = running("two-socket")
    bdf = CARD[3][3]
    kubelet.devices()
    assert remove_function(SysfsRoot(str(root)), bdf)
    update = health_of(kubelet, bdf, "Unhealthy")
    assert [d for d, _, _ in update] == ALL
    assert {h for d, h, _ in update if d != bdf} == {"Healthy"}
    conn = kubelet.latest()
    req = api_pb2.PreferredAllocationRequest()
    req.container_requests.add(available_deviceIDs=CARD[3], allocation_size=3)
    (resp,) = conn.stub.GetPreferredAllocation(req, timeout=HANG_GUARD_S).container_responses
    assert list(resp.deviceIDs) == CARD[3][:3]


def test_numa_unknown_is_left_out_and_drm_nodes_are_handed_over_on_a_real_machine(running, real_root):
    """The real QEMU guest tree: its Cirrus VGA (1013:00b8) counted as an accelerator for the
    test; sysfs links drm/card0 under it and its numa_node reads -1."""
    root = real_root("vm")
    assert (root / "bus/pci/devices/0000:00:02.0/numa_node").read_text().strip() == "-1"
    plugin, kubelet, _ = running("", root=root, accel_ids=["1013:00b8"])
    assert kubelet.devices() == [("0000:00:02.0", "Healthy", [])]
    req = api_pb2.AllocateRequest()
    req.container_requests.add(devices_ids=["0000:00:02.0"])
    (resp,) = kubelet.latest().stub.Allocate(req, timeout=HANG_GUARD_S).container_responses
    assert [d.host_path for d in resp.devices] == ["/dev/dri/card0"]


def test_the_cli_serves_until_sigterm(fixture_root, plugin_dir):
    kubelet = FakeKubelet(plugin_dir).start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelctl", "--sysfs-root", str(fixture_root("two-socket")), "k8s",
         "device-plugin", "--plugin-dir", plugin_dir, "--resource-name", RESOURCE,
         "--poll-interval", "0.2", "--device", "/dev/kfd"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert [d for d, _, _ in kubelet.devices()] == ALL
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=HANG_GUARD_S) == 0, proc.stderr.read()
        assert not os.path.exists(os.path.join(plugin_dir, "accelctl.sock"))
        assert "registered accel.example.com/accelerator" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        kubelet.stop()


@pytest.mark.parametrize("args, words", [
    (["--resource-name", "accelerator"], "not an extended resource name"),
    (["--resource-name", "example.kubernetes.io/x"], "not an extended resource name"),
    (["--plugin-dir", "/nonexistent/device-plugins"], "does not exist"),
])
def test_bad_arguments_exit_2(args, words, fixture_root):
    r = cli("--sysfs-root", str(fixture_root("one-card")), "k8s", "device-plugin", *args)
    assert r.exit_code == 2, r.output
    assert words in r.stderr

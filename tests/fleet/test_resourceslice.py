"""DRA ResourceSlices: through the official kubernetes client's deserializer for every bundled
fixture and the real machines; the 128-device split; names, NUMA, pcieRoot, generation."""

from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402

from accelctl.platform.fixture_mutate import set_link  # noqa: E402
from accelctl.sim.fixture import list_bundled_fixtures  # noqa: E402
from accelctl.sysfs import SysfsRoot  # noqa: E402
from tests.fleet.conftest import cli  # noqa: E402

DRIVER = "accel.example.com"
SLOW_FIXTURES = {"scale"}  # 2,144 functions: its own test below


def slices_of(*args: str, extra: tuple[str, ...] = ()) -> list[dict]:
    r = cli(*args, "k8s", "resourceslice", "--node", "node-a", "--driver", DRIVER, "--json", *extra)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    return doc["items"]


def through_the_client(item: dict) -> dict:
    """What the kubernetes client makes of one printed slice, serialized back: it drops any field
    the API does not have, so a round trip that changes nothing means none was there."""
    api = k8s.ApiClient()
    model = api.deserialize(json.dumps(item), "V1ResourceSlice", "application/json")
    assert isinstance(model, k8s.V1ResourceSlice)
    return api.sanitize_for_serialization(model)


def listed_accelerators(*args: str) -> list[str]:
    r = cli(*args, "list", "--json")
    assert r.exit_code == 0, r.output
    return [d["id"] for d in json.loads(r.stdout)["devices"]]


def pcie_root_from_sysfs(root, bdf: str) -> str:
    """The nearest ``pciDDDD:BB`` directory on the device's real sysfs path (how the upstream
    deviceattribute helper finds it), read here without accelctl."""
    path = os.path.realpath(os.path.join(root, "bus", "pci", "devices", bdf))
    roots = [p for p in path.split(os.sep) if re.fullmatch(r"pci[0-9a-f]{4,}:[0-9a-f]{2}", p)]
    return roots[-1]


@pytest.mark.parametrize("name", [n for n in list_bundled_fixtures() if n not in SLOW_FIXTURES])
def test_every_fixture_survives_the_client_and_lists_each_accelerator_once(name, fixture_root):
    root = fixture_root(name)
    items = slices_of("--sysfs-root", str(root))
    assert len(items) == 1
    assert through_the_client(items[0]) == items[0]
    spec = items[0]["spec"]
    assert spec["driver"] == DRIVER and spec["nodeName"] == "node-a"
    assert spec["pool"] == {"name": "node-a", "generation": 1, "resourceSliceCount": 1}
    devices = spec.get("devices", [])
    bus_ids = [d["attributes"]["resource.kubernetes.io/pciBusID"]["string"] for d in devices]
    assert sorted(bus_ids) == sorted(listed_accelerators("--sysfs-root", str(root)))
    for d in devices:
        attrs = d["attributes"]
        bdf = attrs["resource.kubernetes.io/pciBusID"]["string"]
        assert attrs["resource.kubernetes.io/pcieRoot"]["string"] == pcie_root_from_sysfs(root, bdf)
        numa = (root / "bus/pci/devices" / bdf / "numa_node").read_text().strip()
        if numa == "-1":
            assert f"{DRIVER}/numaNode" not in attrs
        else:
            assert attrs[f"{DRIVER}/numaNode"] == {"int": int(numa)}
        assert re.fullmatch(r"card\d+-ep\d+", d["name"])


def test_the_two_socket_slice_says_what_the_spec_built(fixture_root):
    """Values written by hand from fixtures/two-socket.toml: 4 MI300X cards of 4 endpoints,
    cards 0-1 below the socket-0 switch (upstream 0000:01:00.0), 2-3 below socket 1's."""
    (item,) = slices_of("--sysfs-root", str(fixture_root("two-socket")))
    by_name = {d["name"]: d["attributes"] for d in item["spec"]["devices"]}
    assert len(by_name) == 16
    a = by_name["card2-ep1"]
    assert a["resource.kubernetes.io/pciBusID"] == {"string": "0000:86:00.0"}
    assert a["resource.kubernetes.io/pcieRoot"] == {"string": "pci0000:80"}
    assert a[f"{DRIVER}/numaNode"] == {"int": 1}
    assert a[f"{DRIVER}/card"] == {"int": 2} and a[f"{DRIVER}/endpoint"] == {"int": 1}
    assert a[f"{DRIVER}/externalSwitch"] == {"string": "0000:81:00.0"}
    assert a[f"{DRIVER}/serial"] == {"string": "4d-49-33-30-00-00-02-01"}
    assert a[f"{DRIVER}/linkGeneration"] == {"int": 4} and a[f"{DRIVER}/linkWidth"] == {"int": 16}
    assert a[f"{DRIVER}/downtrained"] == {"bool": False}
    assert "taints" not in item["spec"]["devices"][0]


def test_downtrained_links_are_flagged_and_narrow_ones_tainted(fixture_root):
    """fault-downtrained: card1 trained x8 of x16 and card2 x4 (width drops: unusable until
    reseated), card0 healthy."""
    (item,) = slices_of("--sysfs-root", str(fixture_root("fault-downtrained")))
    devs = {d["name"]: d for d in item["spec"]["devices"]}
    assert devs["card0-ep0"]["attributes"][f"{DRIVER}/downtrained"] == {"bool": False}
    assert "taints" not in devs["card0-ep0"]
    for name in ("card1-ep0", "card2-ep0"):
        assert devs[name]["attributes"][f"{DRIVER}/downtrained"] == {"bool": True}
        assert devs[name]["taints"] == [{"key": f"{DRIVER}/unhealthy", "value": "true", "effect": "NoSchedule"}]


def test_scale_splits_into_slices_of_128_in_one_pool(fixture_root):
    """scale: 64 accelerators x 31 VFs = 1,984 VFs -> 15 slices of 128 and one of 64."""
    items = slices_of("--sysfs-root", str(fixture_root("scale")), extra=("--devices", "vfs"))
    assert [len(s["spec"]["devices"]) for s in items] == [128] * 15 + [64]
    assert {json.dumps(s["spec"]["pool"], sort_keys=True) for s in items} == {
        json.dumps({"generation": 1, "name": "node-a", "resourceSliceCount": 16}, sort_keys=True)}
    names = [d["name"] for s in items for d in s["spec"]["devices"]]
    assert len(set(names)) == 1984 and len({s["metadata"]["name"] for s in items}) == 16
    for s in items:
        assert through_the_client(s) == s
    vf = items[0]["spec"]["devices"][0]["attributes"]
    assert vf[f"{DRIVER}/virtualFunction"] == {"int": 0}
    assert vf[f"{DRIVER}/physicalFunction"]["string"] != vf["resource.kubernetes.io/pciBusID"]["string"]
    # one device per endpoint by default: 64, one slice
    (one,) = slices_of("--sysfs-root", str(fixture_root("scale")))
    assert len(one["spec"]["devices"]) == 64


def test_real_xeon_phi_machine_numa_unknown_is_omitted_never_minus_one(real_root):
    root = real_root("phi")
    assert (root / "bus/pci/devices/0000:02:00.0/numa_node").read_text().strip() == "-1"
    (item,) = slices_of("--sysfs-root", str(root))
    assert through_the_client(item) == item
    devs = item["spec"]["devices"]
    assert [d["attributes"]["resource.kubernetes.io/pciBusID"]["string"] for d in devs] == [
        "0000:02:00.0", "0000:03:00.0"]
    for d in devs:
        assert f"{DRIVER}/numaNode" not in d["attributes"]
        assert d["attributes"]["resource.kubernetes.io/pcieRoot"] == {"string": "pci0000:00"}
        assert d["attributes"][f"{DRIVER}/model"] == {"string": "Xeon Phi coprocessor SE10/7120 series"}


def test_generation_kept_when_nothing_changed_and_bumped_when_a_link_retrained(fixture_copy, tmp_path):
    root = fixture_copy("two-socket")
    first = tmp_path / "first.json"
    r = cli("--sysfs-root", str(root), "k8s", "resourceslice", "--node", "n", "--driver", DRIVER,
            "--generation", "7")
    assert r.exit_code == 0, r.output
    first.write_text(r.stdout)  # YAML, as an operator would keep it
    again = cli("--sysfs-root", str(root), "k8s", "resourceslice", "--node", "n", "--driver", DRIVER,
                "--previous", str(first), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["items"][0]["spec"]["pool"]["generation"] == 7
    set_link(SysfsRoot(str(root)), "0000:05:00.0", width=8)
    bumped = cli("--sysfs-root", str(root), "k8s", "resourceslice", "--node", "n", "--driver", DRIVER,
                 "--previous", str(first), "--json")
    assert json.loads(bumped.stdout)["items"][0]["spec"]["pool"]["generation"] == 8


@pytest.mark.parametrize("args, code, words", [
    (["--node", "Node_A", "--driver", DRIVER], 2, "not a DNS subdomain"),
    (["--node", "n", "--driver", "x" * 64 + ".com"], 2, "at most 63"),
    (["--node", "n", "--driver", DRIVER, "--previous", "/nonexistent/prev.yaml"], 6, "cannot read"),
])
def test_bad_input_is_a_message_and_an_exit_code(args, code, words, fixture_root):
    r = cli("--sysfs-root", str(fixture_root("one-card")), "k8s", "resourceslice", *args)
    assert r.exit_code == code, r.output
    assert words in r.stderr and "Traceback" not in r.stderr


def test_previous_file_that_is_not_slices_exits_6(tmp_path, fixture_root):
    bad = tmp_path / "prev.yaml"
    bad.write_text("kind: ConfigMap\n")
    r = cli("--sysfs-root", str(fixture_root("one-card")), "k8s", "resourceslice", "--node", "n", "--driver", DRIVER,
            "--previous", str(bad))
    assert r.exit_code == 6 and "ResourceSlices" in r.stderr


def test_without_the_kubernetes_client_the_command_says_what_to_install(monkeypatch, fixture_root):
    import sys

    monkeypatch.setitem(sys.modules, "kubernetes", None)
    r = cli("--sysfs-root", str(fixture_root("one-card")), "k8s", "resourceslice", "--node", "n", "--driver", DRIVER)
    assert r.exit_code == 1
    assert "'kubernetes'" in r.stderr and "accelctl[fleet]" in r.stderr


def test_the_client_models_refuse_a_field_the_api_does_not_have():
    from accelctl.fleet.resourceslice import _device_model

    with pytest.raises(Exception, match="bogus"):
        _device_model(k8s, {"name": "card0-ep0", "attributes": {"x/a": {"int": 1, "bogus": 2}}})

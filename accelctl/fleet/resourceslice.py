"""DRA ResourceSlices (``resource.k8s.io/v1``) for this machine's accelerators.

The slices are built from the official ``kubernetes`` client's models (pydantic models that
refuse a field the API does not have, or a value of the wrong type) and serialized by the
client itself, so what we print is what the API defines. Rules the models do not check (name
formats, lengths, counts) are checked here, from the API reference:

* at most 128 devices per slice; more devices -> more slices of one pool, each saying how many
  slices the pool has and all carrying the same generation;
* device names are DNS labels; attribute names are ``[domain/]cIdentifier`` (name <= 32);
  string values <= 64 characters; at most 32 attributes and capacities per device.

Attributes: the standard ``resource.kubernetes.io/pcieRoot`` (``pci<domain>:<bus>``) and
``resource.kubernetes.io/pciBusID``, and ours, qualified with the driver name.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelctl.errors import InvalidRequestError

if TYPE_CHECKING:
    from accelctl.fleet.inventory import FleetDevice, Inventory

API_VERSION = "resource.k8s.io/v1"
#: ResourceSliceMaxDevices in the API.
MAX_DEVICES_PER_SLICE = 128
MAX_ATTRIBUTES = 32
MAX_STRING = 64
STANDARD_PREFIX = "resource.kubernetes.io/"
PCIE_ROOT = STANDARD_PREFIX + "pcieRoot"
PCI_BUS_ID = STANDARD_PREFIX + "pciBusID"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


class DeviceMode(str, enum.Enum):
    """What one DRA device is: an accelerator endpoint, or a virtual function of one."""

    ENDPOINTS = "endpoints"
    VFS = "vfs"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SliceRequest:
    node: str
    driver: str
    #: "endpoints": one device per accelerator endpoint; "vfs": one per virtual function where
    #: a PF has VFs enabled (the PF itself is then not offered), the PF otherwise
    devices: DeviceMode = DeviceMode.ENDPOINTS
    generation: int = 1

    def check(self) -> None:
        """Raises InvalidRequestError: a name the API would refuse, or a bad generation."""
        if not _DNS_SUBDOMAIN.match(self.node):
            raise InvalidRequestError(f"node name {self.node!r} is not a DNS subdomain",
                                      hint="use the node's name as 'kubectl get nodes' prints it")
        if len(self.driver) > 63 or not _DNS_SUBDOMAIN.match(self.driver):
            raise InvalidRequestError(
                f"driver name {self.driver!r} is not a DNS subdomain of at most 63 characters",
                hint="a DRA driver is named after a domain its vendor owns, e.g. accel.example.com")
        if self.generation < 0:
            raise InvalidRequestError(f"generation must be >= 0, not {self.generation}")


def device_name(dev: FleetDevice, vf_index: int | None = None) -> str:
    """``card0-ep1`` (``card0-ep1-vf3``): a DNS label, stable across boots like cardN.epM."""
    base = f"card{dev.card}-ep{dev.endpoint}"
    return base if vf_index is None else f"{base}-vf{vf_index}"


def _qualified(driver: str, name: str) -> str:
    return f"{driver}/{name}"


def device_attributes(driver: str, dev: FleetDevice, bdf: str) -> dict[str, dict[str, Any]]:
    """The attributes of one device, as plain ``{name: {type: value}}`` (None values left out)."""
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, kind: str, value: Any) -> None:
        if value is None:
            return
        if kind == "string":
            value = str(value)[:MAX_STRING]
        out[name] = {kind: value}

    put(PCIE_ROOT, "string", dev.pcie_root)
    put(PCI_BUS_ID, "string", bdf)
    q = lambda n: _qualified(driver, n)  # noqa: E731 - a local shorthand
    put(q("numaNode"), "int", dev.numa_node)
    put(q("card"), "int", dev.card)
    put(q("endpoint"), "int", dev.endpoint)
    put(q("globalID"), "int", dev.global_id)
    put(q("externalSwitch"), "string", dev.external_switch)
    put(q("serial"), "string", dev.serial)
    put(q("model"), "string", dev.model)
    put(q("vendorID"), "string", dev.vendor_id)
    put(q("deviceID"), "string", dev.device_id)
    put(q("linkGeneration"), "int", dev.link_generation)
    put(q("linkWidth"), "int", dev.link_width)
    put(q("downtrained"), "bool", dev.downtrained)
    put(q("healthy"), "bool", not dev.faults)
    if bdf != dev.bdf:
        put(q("physicalFunction"), "string", dev.bdf)
        put(q("virtualFunction"), "int", dev.virtual_functions.index(bdf))
    return out


def _devices(inv: Inventory, req: SliceRequest) -> list[dict[str, Any]]:
    out = []
    for dev in inv.devices:
        members: list[tuple[str, int | None]] = [(dev.bdf, None)]
        if req.devices == DeviceMode.VFS and dev.virtual_functions:
            members = [(vf, i) for i, vf in enumerate(dev.virtual_functions)]
        for bdf, vf_index in members:
            entry: dict[str, Any] = {
                "name": device_name(dev, vf_index),
                "attributes": device_attributes(req.driver, dev, bdf),
            }
            if dev.faults:
                # A device that cannot be used is published with a taint (DRADeviceTaints) rather
                # than dropped: the operator sees it and why; the scheduler does not place on it.
                entry["taints"] = [{"key": _qualified(req.driver, "unhealthy"),
                                    "value": "true", "effect": "NoSchedule"}]
            out.append(entry)
    return out


def slice_name(node: str, driver: str, index: int) -> str:
    """``<node>-<driver>-<index>``, cut and cleaned to a DNS subdomain."""
    cleaned = re.sub(r"[^a-z0-9.-]", "-", f"{node}-{driver}".lower()).strip(".-")
    return f"{cleaned[:240]}-{index}"


def build_slices(inv: Inventory, req: SliceRequest) -> list[dict[str, Any]]:
    """The pool's slices as API objects (dicts in the API's JSON shape), validated by the
    kubernetes client's models.

    Raises:
        InvalidRequestError: a node or driver name the API would refuse.
        MissingDependencyError: the kubernetes client is not installed.
    """
    req.check()
    client = _client()
    devices = _devices(inv, req)
    chunks = [devices[i:i + MAX_DEVICES_PER_SLICE]
              for i in range(0, len(devices), MAX_DEVICES_PER_SLICE)] or [[]]
    api = client.ApiClient()
    out = []
    for index, chunk in enumerate(chunks):
        model = client.V1ResourceSlice(
            api_version=API_VERSION,
            kind="ResourceSlice",
            metadata=client.V1ObjectMeta(name=slice_name(req.node, req.driver, index)),
            spec=client.V1ResourceSliceSpec(
                driver=req.driver,
                node_name=req.node,
                pool=client.V1ResourcePool(name=req.node, generation=req.generation,
                                           resource_slice_count=len(chunks)),
                devices=[_device_model(client, d) for d in chunk],
            ),
        )
        doc = api.sanitize_for_serialization(model)
        check_slice(doc)
        out.append(doc)
    return out


def _device_model(client: Any, entry: dict[str, Any]) -> Any:
    return client.V1Device(
        name=entry["name"],
        attributes={k: client.V1DeviceAttribute(**v) for k, v in entry["attributes"].items()},
        taints=[client.V1DeviceTaint(**t) for t in entry.get("taints", ())] or None,
    )


def check_slice(doc: dict[str, Any]) -> None:
    """The API's rules the client models do not enforce. Raises ValueError (a bug in us)."""
    devices = doc["spec"].get("devices", [])
    if len(devices) > MAX_DEVICES_PER_SLICE:
        raise ValueError(f"{len(devices)} devices in one slice")
    names = [d["name"] for d in devices]
    if len(set(names)) != len(names):
        raise ValueError("duplicate device names in a slice")
    for d in devices:
        if not _DNS_LABEL.match(d["name"]):
            raise ValueError(f"device name {d['name']!r} is not a DNS label")
        attrs = d.get("attributes", {})
        if len(attrs) + len(d.get("capacity", {})) > MAX_ATTRIBUTES:
            raise ValueError(f"{d['name']}: more than {MAX_ATTRIBUTES} attributes")
        for key, value in attrs.items():
            domain, _, name = key.rpartition("/")
            if not _C_IDENTIFIER.match(name) or (domain and not _DNS_SUBDOMAIN.match(domain)):
                raise ValueError(f"attribute name {key!r} is not [domain/]cIdentifier")
            if len(value) != 1:
                raise ValueError(f"attribute {key!r} must have exactly one value")
            if "string" in value and len(value["string"]) > MAX_STRING:
                raise ValueError(f"attribute {key!r} is longer than {MAX_STRING}")


def next_generation(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> int:
    """The generation to publish: the previous pool's, plus one when any device changed.

    `current` was built with any generation; only the devices are compared."""
    if not previous:
        return 1
    prev_gen = max(int(s["spec"]["pool"]["generation"]) for s in previous)
    devices = lambda slices: [d for s in slices for d in s["spec"].get("devices", [])]  # noqa: E731
    return prev_gen if devices(previous) == devices(current) else prev_gen + 1


def restamp_generation(slices: list[dict[str, Any]], generation: int) -> list[dict[str, Any]]:
    """The same slices carrying `generation` (every slice of a pool carries the same one)."""
    for s in slices:
        s["spec"]["pool"]["generation"] = generation
    return slices


def load_slices(text: str, source: str) -> list[dict[str, Any]]:
    """ResourceSlices from what this module printed before (a JSON List, or YAML documents).

    Raises:
        InputFileError: not JSON or YAML, or no ResourceSlice in it.
    """
    import json

    from accelctl.errors import InputFileError

    try:
        docs: list[Any] = [json.loads(text)]
    except ValueError:
        try:
            import yaml

            docs = list(yaml.safe_load_all(text))
        except ImportError:
            from accelctl.errors import MissingDependencyError

            raise MissingDependencyError("pyyaml") from None
        except yaml.YAMLError as err:
            raise InputFileError(f"not JSON or YAML: {err}", path=source) from None
    items: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items.extend(doc.get("items") or [])
        elif doc is not None:
            items.append(doc)
    slices = [i for i in items if isinstance(i, dict) and i.get("kind") == "ResourceSlice"
              and isinstance(i.get("spec"), dict) and isinstance(i["spec"].get("pool"), dict)]
    if len(slices) != len(items) or not slices:
        raise InputFileError("expected the ResourceSlices 'accelctl k8s resourceslice' printed",
                             path=source)
    return slices


def as_list(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``v1 List`` of the slices: one JSON document ``kubectl apply -f`` takes."""
    return {"apiVersion": "v1", "kind": "List", "items": slices}


def _client() -> Any:
    try:
        from kubernetes import client
    except ImportError:
        from accelctl.errors import MissingDependencyError

        raise MissingDependencyError("kubernetes") from None
    return client

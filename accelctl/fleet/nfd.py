"""Node Feature Discovery labels, as a feature file for NFD's `local` source.

The file is what NFD's local source reads from ``features.d/``: one ``name=value`` per line and
an ``# +expiry-time=<RFC3339>`` directive, after which NFD drops the labels (so a node whose
accelctl stopped running loses them instead of advertising stale facts). NFD's rules, followed
here: a file of at most 64 KiB; label names qualified (``prefix/name``) in a namespace NFD
accepts without extra configuration (``*.feature.node.kubernetes.io``); names and values as
Kubernetes labels (name <= 63, value <= 63, alphanumerics and ``-_.`` inside).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelctl.fleet.inventory import Inventory

#: A subdomain of feature.node.kubernetes.io: NFD publishes it without -extra-label-ns.
LABEL_NS = "accelctl.feature.node.kubernetes.io"
MAX_FILE_BYTES = 65536
DEFAULT_FEATURES_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
DEFAULT_FILE_NAME = "accelctl"

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def label_value(text: str) -> str:
    """`text` as a valid label value: other characters become '_', cut to 63, trimmed to
    alphanumeric ends ('' when nothing is left)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def nfd_labels(inv: Inventory) -> dict[str, str]:
    """name -> value, names qualified with LABEL_NS, in a stable order."""
    devices = inv.devices
    labels: dict[str, str] = {}

    def put(name: str, value: object) -> None:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        labels[f"{LABEL_NS}/{name}"] = text

    put("present", bool(devices))
    put("accelerators", len(devices))
    put("cards", len(inv.topology.cards))
    put("healthy", sum(1 for d in devices if not d.faults))
    per_card = {len(c.endpoints) for c in inv.topology.cards}
    if len(per_card) == 1:
        put("endpoints-per-card", per_card.pop())
    models = sorted({d.model for d in devices})
    if len(models) == 1:
        put("model", label_value(models[0]) or "unknown")
    elif models:
        put("model", "mixed")
    ids: dict[str, int] = {}
    for d in devices:
        key = f"pci-{d.vendor_id or 'unknown'}-{d.device_id or 'unknown'}.count"
        ids[key] = ids.get(key, 0) + 1
    for key in sorted(ids):
        put(key, ids[key])
    # P2P answers that are not a clear yes (unknown, or no) make this false: a scheduler must not
    # place peer-to-peer work on a guess.
    put("p2p-all-pairs", inv.all_pairs_p2p())
    put("link-downtrained", any(d.downtrained for d in devices))
    numa = sorted({d.numa_node for d in devices if d.numa_node is not None})
    if numa:
        put("numa-nodes", "-".join(str(n) for n in numa) if len(numa) < 16 else f"{len(numa)}-nodes")
    return labels


def feature_file(labels: dict[str, str], *, now: datetime | None = None,
                 expiry: timedelta | None = timedelta(hours=1)) -> str:
    """The file's text. Raises ValueError when a label breaks NFD's rules (a bug in us)."""
    lines = ["# Written by accelctl k8s nfd (docs/fleet.md). Do not edit: it is rewritten."]
    if expiry is not None:
        at = (now or datetime.now(timezone.utc)) + expiry
        lines.append(f"# +expiry-time={at.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    for name, value in labels.items():
        check_label(name, value)
        lines.append(f"{name}={value}")
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ValueError(f"feature file of {len(text.encode())} bytes is over NFD's {MAX_FILE_BYTES}")
    return text


def check_label(name: str, value: str) -> None:
    prefix, _, base = name.rpartition("/")
    if prefix != LABEL_NS or not _LABEL_NAME.match(base):
        raise ValueError(f"label name {name!r} breaks NFD's rules")
    if not _LABEL_VALUE.match(value):
        raise ValueError(f"label value {value!r} of {name} breaks NFD's rules")

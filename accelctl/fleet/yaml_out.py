"""YAML for Kubernetes objects (PyYAML comes with the kubernetes client)."""

from __future__ import annotations

from typing import Any


def dump_all(objects: list[dict[str, Any]]) -> str:
    """A YAML stream, one document per object, keys in the order we built them."""
    try:
        import yaml
    except ImportError:
        from accelctl.errors import MissingDependencyError

        raise MissingDependencyError("pyyaml") from None
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)

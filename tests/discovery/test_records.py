"""Typed records from sysfs up (issue 11, item 4): config space is decoded once per function, in
the scan, and the topology builds on typed records without knowing kernel attribute names."""

from __future__ import annotations

import ast
from pathlib import Path

import accelctl.sysfs.config as config_module
import accelctl.sysfs.scan as scan_module
from accelctl.sim.fixture import bundled_fixture_root
from accelctl.topology import build_topology

PACKAGE = Path(__file__).resolve().parents[2] / "accelctl"


def test_config_space_is_decoded_once_per_function(monkeypatch) -> None:
    """One decode per function, and one capability walk at most (the scan used to walk the chain
    for AER, SR-IOV and the port type, then the build decoded it all again)."""
    decodes: list[int] = []
    walks: list[str] = []

    def counted(module, name, log):  # type: ignore[no-untyped-def]
        real = getattr(config_module, name)

        def wrapper(*args, **kw):  # type: ignore[no-untyped-def]
            log.append(name)
            return real(*args, **kw)

        monkeypatch.setattr(config_module, name, wrapper)
        monkeypatch.setattr(module, name, wrapper, raising=False)

    counted(scan_module, "decode_config", decodes)
    for name in ("_walk_caps", "find_capability", "find_ext_capability"):
        counted(scan_module, name, walks)
    topo = build_topology(bundled_fixture_root("two-socket"), names=False)
    assert len(decodes) == len(topo.functions)
    assert len(walks) <= len(topo.functions), sorted(set(walks))


def _attribute_names() -> set[str]:
    """The attribute file names the scan knows that are not also plain words ("class", "device")."""
    return {n for n in (scan_module.SYSFS_ONLY_ATTRS + scan_module.CONFIG_BACKED_ATTRS + scan_module.AER_ATTRS
               + scan_module.ROOT_PORT_ATTRS + scan_module.LINK_ATTRS) if "_" in n}


def test_the_topology_neither_parses_attributes_nor_names_them() -> None:
    names = _attribute_names()
    for path in sorted((PACKAGE / "topology").glob("*.py")):
        check_names = path.name == "build.py"  # elsewhere the same words are JSON keys
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "accelctl.sysfs.attrs" or all(
                    a.name == "Resource" for a in node.names), f"{path.name} imports attribute parsers"
                assert not (node.module == "accelctl.sysfs" and any(a.name == "attrs" for a in node.names)), path.name
            if check_names and isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in names, f"{path.name} names the kernel attribute {node.value!r}"

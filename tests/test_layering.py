"""The layering of docs (README "Layout"), as a test: a module may import only from its own
layer or lower ones, never sideways between the two bottom layers that play opposite ends of
the protocol (driver/ and sim/), and only cli/ may import typer or rich.

Every import counts, at module level or inside a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "accelctl"

#: Top-level module or package of accelctl -> its layer (higher may import lower).
LAYERS = {
    "errors": 0, "dirs": 0, "_files": 0, "_toml": 0, "pci": 0, "protocol": 0, "_fixtures": 0,
    "driver": 1, "sim": 1,
    "sysfs": 2,
    "snapshot": 3,
    "platform": 4,
    "topology": 5,
    "addressing": 6,
    "machine": 7,
    "diagnostics": 8, "reset": 8, "watch": 8, "endpoints": 8,
    "bench": 9, "fleet": 9,
    "cli": 10, "__main__": 10, "__init__": 10,
}
#: Same layer, but must not import each other: the two ends of the protocol.
SEPARATE = {("driver", "sim"), ("sim", "driver")}
#: Known debt, each with the reason it is still here. Keep this empty where you can.
ALLOWED: set[tuple[str, str]] = set()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if node.module == "accelctl":
                out |= {f"accelctl.{a.name}" for a in node.names}
    return out


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_every_part_of_the_package_has_a_layer():
    tops = {_top(p) for p in PACKAGE.rglob("*.py")}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_no_layer_imports_a_higher_one_or_its_opposite_end():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _top(path)
        for name in _imports(path):
            if not name.startswith("accelctl."):
                continue
            dst = name.split(".")[1]
            if dst == src or dst not in LAYERS or (src, dst) in ALLOWED:
                continue
            if LAYERS[dst] > LAYERS[src] or (src, dst) in SEPARATE:
                bad.append(f"{path.relative_to(PACKAGE.parent)}: {src} (layer {LAYERS[src]}) imports {name}")
    assert not bad, "\n".join(bad)


def test_only_the_cli_uses_typer_or_rich():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _top(path) in ("cli", "__main__"):
            continue
        for name in _imports(path):
            if name.split(".")[0] in ("typer", "rich", "click"):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)

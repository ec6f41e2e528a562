"""Property test: random topology specs, built into trees, read identically by lspci and accelctl."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelctl.sim.fixture import build_fixture
from accelctl.topology import build_topology
from tests.conftest import requires_lspci
from tests.discovery.test_lspci_agreement import disagreements

pytestmark = requires_lspci

GENS = st.integers(1, 5)
WIDTHS = st.sampled_from([1, 2, 4, 8, 16])


@st.composite
def specs(draw):
    lines = ['[machine]', 'name = "random"', f'config_access = "{draw(st.sampled_from(["root", "root", "user"]))}"',
             f'dialect = "{draw(st.sampled_from(["modern", "legacy"]))}"']
    cards = 0
    for h in range(draw(st.integers(1, 2))):
        lines += ["[[host_bridge]]", f'name = "h{h}"', f"bus = {h * 0x40}", f"numa_node = {h}"]
        for r in range(draw(st.integers(1, 3))):
            rp = f"h{h}.rp{r}"
            lines += ["[[root_port]]", f'name = "{rp}"', f'parent = "h{h}"', f'at = "0{r + 1}.1"',
                      f"gen = {draw(GENS)}", f"width = {draw(WIDTHS)}"]
            parents = [rp]
            if draw(st.booleans()):
                ports = draw(st.integers(1, 4))
                lines += ["[[switch]]", f'name = "sw{h}{r}"', f'parent = "{rp}"', f"ports = {ports}",
                          f"gen = {draw(GENS)}", f"width = {draw(WIDTHS)}"]
                parents = [f"sw{h}{r}.dp{p}" for p in range(ports)]
            for parent in parents:
                kind = draw(st.sampled_from(["card", "card", "endpoint", "empty"]))
                if kind == "card":
                    layout = draw(st.sampled_from(["single", "multifunction", "switch"]))
                    eps = 1 if layout == "single" else draw(st.integers(2, 4))
                    lines += ["[[card]]", f'name = "c{cards}"', f'parent = "{parent}"', 'id = "1e52:401e"',
                              f'layout = "{layout}"', f"endpoints = {eps}", f"gen = {draw(GENS)}",
                              f"width = {draw(WIDTHS)}", f"serial = {0x1000 + cards * 0x10}"]
                    if draw(st.booleans()):
                        lines.append(f"trained = {{ width = 1 }}")
                    cards += 1
                elif kind == "endpoint":
                    lines += ["[[endpoint]]", f'name = "e{parent}"', f'parent = "{parent}"',
                              'id = "15b3:1021"', "class = 0x020000", f"gen = {draw(GENS)}",
                              f"width = {draw(WIDTHS)}"]
    return "\n".join(lines) + "\n", cards


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs())
def test_random_specs_agree_with_lspci(tmp_path_factory, spec):
    text, n_cards = spec
    d = tmp_path_factory.mktemp("rand")
    (d / "spec.toml").write_text(text)
    tree = build_fixture(d / "spec.toml", d / "tree")
    assert disagreements(tree) == [], text
    assert len(build_topology(tree, names=False).cards) == n_cards, text

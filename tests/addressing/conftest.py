"""Fixture trees for the addressing tests, built with the fixture builder into tmp dirs."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.addressing import specs


@pytest.fixture(autouse=True)
def _no_address_env(monkeypatch):
    for var in ("ACCELCTL_VISIBLE_DEVICES", "ACCELCTL_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)


def build_tree(text: str, out: Path) -> Path:
    from accelctl.sim.fixture import build_fixture, parse_spec

    return build_fixture(parse_spec(text, path="addr-test.toml"), out)


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> dict[str, Path]:
    """The variants of tests/addressing/specs.py, built once per session."""
    base = tmp_path_factory.mktemp("addr-trees")
    variants = {
        "base": specs.spec(),
        "switched_nic": specs.spec(specs.SWITCHED_NIC_RP2),
        "new_card": specs.spec(specs.NEW_CARD_RP2),
        "swapped": specs.spec(g_serials="[0x2100, 0x2000]"),
    }
    return {name: build_tree(text, base / name) for name, text in variants.items()}


@pytest.fixture
def tmpfs_dir():
    """A scratch directory on tmpfs, where os.listdir returns entries newest first: creating the
    same tree in two orders there gives two listing orders (ext4 lists in hash order whatever the
    creation order, so a copy on ext4 would prove nothing)."""
    import tempfile

    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable tmpfs at /dev/shm")
    d = tempfile.mkdtemp(prefix="accelctl-addr-", dir="/dev/shm")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def copy_in_other_order(src: Path, dst: Path, seed: int | None) -> None:
    """Recreate `src` at `dst`, creating every directory's entries in a shuffled order (seed), or
    in sorted order (seed None)."""
    rng = random.Random(seed)

    def copy_dir(s: str, d: str) -> None:
        os.mkdir(d)
        names = sorted(os.listdir(s))
        if seed is not None:
            rng.shuffle(names)
        for name in names:
            sp, dp = os.path.join(s, name), os.path.join(d, name)
            if os.path.islink(sp):
                os.symlink(os.readlink(sp), dp)
            elif os.path.isdir(sp):
                copy_dir(sp, dp)
            else:
                shutil.copyfile(sp, dp)

    copy_dir(str(src), str(dst))

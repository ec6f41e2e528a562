"""Helpers for the fleet tests: bundled fixture trees (read-only, built once per session) and
private copies to inject faults into; the real machines' trees. Trees go to /dev/shm when there
is one: building the scale tree there takes ~1 s, on the test machines' disks ~50 s."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelctl.cli.app import app

runner = CliRunner()


def cli(*args: str):  # type: ignore[no-untyped-def]
    """Run accelctl in-process; stdout and stderr apart."""
    return runner.invoke(app, list(args))


@pytest.fixture(scope="session")
def scratch(tmp_path_factory) -> Iterator[Path]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="accelctl-fleet-tests-", dir=shm))
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="session")
def fixture_root(scratch) -> Callable[[str], Path]:
    """fixture_root(name) -> the bundled fixture's tree, built once: read it, never change it."""
    from accelctl.sim.fixture import build_fixture, bundled_spec_path

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = build_fixture(bundled_spec_path(name), scratch / "built" / name)
        return cache[name]
    return get


@pytest.fixture
def fixture_copy(fixture_root, scratch) -> Callable[[str], Path]:
    """fixture_copy(name) -> a private copy of a bundled fixture tree, to mutate."""
    made: list[Path] = []

    def copy(name: str) -> Path:
        dest = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
        shutil.rmtree(dest)
        shutil.copytree(fixture_root(name), dest, symlinks=True)
        made.append(dest)
        return dest
    yield copy
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def real_root(scratch) -> Callable[[str], Path]:
    """real_root(name) -> a real machine's sysfs root ("phi", "x58", "vm"), unpacked on first
    use; skips where ../shared/real-machines is absent."""
    from tests.discovery.test_real_machines import REAL, TREES

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if not REAL.is_dir():
            pytest.skip(f"{REAL} is not here (a clone without it)")
        if name not in cache:
            dest = scratch / "real" / name
            with tarfile.open(REAL / TREES[name]) as tar:
                tar.extractall(dest, filter="tar")
            (cache[name],) = dest.glob("*/sys")
        return cache[name]
    return get

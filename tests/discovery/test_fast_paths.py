"""The scan's fast paths agree with the slow, obvious code they replace, on any input."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from accelctl.pci.bdf import SYSFS_NAME, Bdf
from accelctl.sysfs.root import SysfsRoot, _join_relative

_COMPONENT = st.sampled_from(["..", ".", "", "a", "b", "devices", ".x", "pci0000:00", "0000:00:01.0"])
_BASES = st.sampled_from(["/", "/r", "/r/bus/pci/devices", "/r/a/", "//r", "/r/./a", "/r/../a", "r/a", ""])


@given(_BASES, st.lists(_COMPONENT, min_size=1, max_size=7))
def test_relative_link_join_matches_normpath(base, parts):
    target = "/".join(parts)
    if target.startswith("/"):
        return  # absolute targets never reach the relative join
    assert _join_relative(base, target) == os.path.normpath(os.path.join(base, target))


def test_device_links_resolve_relative_to_the_open_directory(tmp_path):
    target = tmp_path / "devices" / "pci0000:00" / "0000:00:01.0"
    target.mkdir(parents=True)
    devices = tmp_path / "bus" / "pci" / "devices"
    devices.mkdir(parents=True)
    (devices / "0000:00:01.0").symlink_to("../../../devices/pci0000:00/0000:00:01.0")
    root = SysfsRoot(tmp_path)
    fd = os.open(devices, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = root.link_target(str(devices / "0000:00:01.0"), dir_fd=fd)
    finally:
        os.close(fd)
    assert got == str(target.resolve())


_HEX = "0123456789abcdef"


@given(
    st.text(_HEX, min_size=4, max_size=5),
    st.text(_HEX, min_size=2, max_size=2),
    st.integers(0, 0x1F),
    st.integers(0, 7),
)
def test_bdf_from_a_sysfs_name_equals_the_full_parser(dom, bus, dev, fn):
    name = f"{dom}:{bus}:{dev:02x}.{fn}"
    assert SYSFS_NAME.match(name)
    assert Bdf.from_sysfs_name(name) == Bdf.parse(name)
    if len(dom) == 4:  # the kernel's own "%04x:%02x:%02x.%d": the name is the canonical id
        assert str(Bdf.from_sysfs_name(name)) == name


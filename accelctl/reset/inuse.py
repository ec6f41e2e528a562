"""Who holds the devices a reset would touch.

Real system: open files and memory maps in /proc/*/fd and /proc/*/maps that point into a device's
sysfs directory (resourceN, config), at one of its /dev nodes (matched by device number, as the
kernel sees them), or at its VFIO group. Simulator: the connections it reports (one connection is
one open file of the simulated driver). This process is never counted: accelctl's own handles are
not users (aws-neuron's "free access" open makes the same distinction).

A question that gets no answer is not a "no": when the simulator daemon is running but does not
say who is connected, or when the scan of a real machine cannot see the open files of every
process (not root: other users' /proc/PID/fd are closed to it, or /proc hides their processes),
the holders are unknown, and a reset refuses (unless forced) saying why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelctl.errors import BackendError
from accelctl.snapshot.policy import is_device_dir

if TYPE_CHECKING:
    from accelctl.platform.linux import LinuxPlatform
    from accelctl.topology import Topology


@dataclass(slots=True, frozen=True)
class Holder:
    pid: int
    command: str
    bdf: str
    #: how it holds the device: "open <path>", "mmap <path>", "simulator connection"
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "command": self.command, "bdf": self.bdf, "how": self.how}


def process_command(pid: int) -> str:
    """The command line of `pid` ("?" when it is gone or hidden)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        raw = b""
    if raw:
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"


def _dev_numbers(device_dir: str) -> set[int]:
    """st_rdev values of the /dev nodes a driver created for the device (drm/card0/dev "226:0")."""
    out: set[int] = set()
    for dirpath, dirnames, filenames in os.walk(device_dir):
        depth = dirpath[len(device_dir) :].count(os.sep)
        # driver children sit one or two levels down; never descend into child functions
        dirnames[:] = [d for d in dirnames if not is_device_dir(d)]
        if depth >= 3:
            dirnames[:] = []
        if "dev" in filenames and dirpath != device_dir:
            try:
                with open(os.path.join(dirpath, "dev")) as f:
                    major, minor = f.read().strip().split(":")
                out.add(os.makedev(int(major), int(minor)))
            except (OSError, ValueError):
                pass
    return out


#: PF_KTHREAD in /proc/PID/stat's flags: a kernel thread, which holds no open files.
_PF_KTHREAD = 0x00200000


def _is_kernel_thread(proc: str, pid: int) -> bool:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return bool(int(fields[6]) & _PF_KTHREAD)
    except (OSError, IndexError, ValueError):
        return False


@dataclass(slots=True, frozen=True)
class ProcessScan:
    """What a scan of /proc found, and what it could not look at."""

    holders: list[Holder]
    #: processes whose open files could not be read (another user's, for a scan that is not root)
    unseen: list[int]
    #: /proc does not list every process (mounted with hidepid): the scan cannot know who exists
    hidden: bool

    def blind_spots(self) -> list[str]:
        """Why the holders may be incomplete, for people; empty when the scan saw everything."""
        out = []
        if self.hidden:
            out.append("/proc hides other users' processes (mounted with hidepid)")
        if self.unseen:
            shown = ", ".join(str(p) for p in self.unseen[:5]) + (", ..." if len(self.unseen) > 5 else "")
            out.append(f"cannot see the open files of {len(self.unseen)} process(es) (pid {shown}): "
                       "only root sees every process's (with CAP_SYS_PTRACE, which containers often drop)")
        return out


def scan_processes(
    device_dirs: dict[str, str], iommu_groups: dict[str, str | None], *, proc: str = "/proc"
) -> ProcessScan:
    """Processes (other than this one) holding any of the devices open or mapped, and the
    processes the scan could not look into.

    device_dirs: BDF -> real sysfs directory of the function (under whatever root is in use).
    iommu_groups: BDF -> iommu group number (for /dev/vfio/<group>), or None.
    """
    me = os.getpid()
    prefixes = {bdf: os.path.realpath(d) + os.sep for bdf, d in device_dirs.items()}
    rdevs: dict[int, str] = {}
    for bdf, d in device_dirs.items():
        for rdev in _dev_numbers(d):
            rdevs[rdev] = bdf
    vfio = {f"/dev/vfio/{g}": bdf for bdf, g in iommu_groups.items() if g is not None}
    found: dict[tuple[int, str], Holder] = {}

    def match(path: str) -> str | None:
        for bdf, prefix in prefixes.items():
            if path.startswith(prefix):
                return bdf
        return vfio.get(path)

    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return ProcessScan([], [], hidden=True)
    unseen: list[int] = []
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            # not ours to look at (another user's, and we are not root): a holder we cannot
            # see is not a "no". Kernel threads hold no files.
            if not _is_kernel_thread(proc, pid):
                unseen.append(pid)
            fds = []
        except OSError:
            fds = []  # gone
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            bdf = match(target)
            if bdf is None and target.startswith("/dev/") and rdevs:
                try:
                    bdf = rdevs.get(os.stat(target).st_rdev)
                except OSError:
                    bdf = None
            if bdf is not None and (pid, bdf) not in found:
                found[(pid, bdf)] = Holder(pid, process_command(pid), bdf, f"open {target}")
        try:
            with open(f"{proc}/{pid}/maps", "rb") as f:
                maps = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in maps.splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path = parts[5].removesuffix(" (deleted)")
            bdf = match(path)
            if bdf is not None and (pid, bdf) not in found:
                found[(pid, bdf)] = Holder(pid, process_command(pid), bdf, f"mmap {path}")
    # pid 1 always exists (in every pid namespace): missing from the listing, /proc hides processes
    return ProcessScan(sorted(found.values(), key=lambda h: (h.bdf, h.pid)), unseen, hidden=1 not in pids)


@dataclass(slots=True)
class InUse:
    """Who holds the devices, as far as could be found out."""

    holders: list[Holder]
    #: why the list may be incomplete (a source that did not answer); empty when it is complete
    unknown: list[str]


def find_holders(topo: Topology, bdfs: list[str], platform: LinuxPlatform) -> InUse:
    """Processes holding any of `bdfs`: open/mapped files on the machine, plus simulator
    connections when the platform is simulated."""
    dirs = {b: topo.functions[b].path for b in bdfs}
    groups = {b: topo.functions[b].iommu_group for b in bdfs}
    scan = scan_processes(dirs, {b: (str(g) if g is not None else None) for b, g in groups.items()})
    holders = list(scan.holders)
    unknown: list[str] = []
    if platform.kind != "simulator":
        # a real device: the process scan is the only source, so what it cannot see is unknown.
        # (A simulated device's users are its connections, which the daemon lists in full.)
        unknown.extend(scan.blind_spots())
    else:
        try:
            info = platform.introspect()  # type: ignore[attr-defined]
        except BackendError as err:
            unknown.append(f"the simulator did not say who is connected: {err}")
            info = None
        me = os.getpid()
        wanted = set(bdfs)
        for bdf, ep in sorted(((info or {}).get("endpoints") or {}).items()):
            if bdf not in wanted:
                continue
            for s in ep.get("sessions", []):
                pid = s.get("pid")
                if pid is None or pid == me:
                    continue
                holders.append(Holder(pid, process_command(pid), bdf, f"simulator connection (session {s.get('id')})"))
    uniq = {(h.pid, h.bdf, h.how): h for h in holders}
    return InUse(sorted(uniq.values(), key=lambda h: (h.bdf, h.pid, h.how)), unknown)

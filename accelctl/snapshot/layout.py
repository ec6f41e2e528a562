"""The shape a snapshot archive may have, checked member by member and then as a whole.

A snapshot is ``snapshot.json`` plus a ``sysfs/`` tree of directories, regular files and
relative symlinks. What is refused, and why:

- names that are absolute, hold ``..``, ``\\``, NUL, or are deeper or longer than any sysfs path;
- anything outside ``snapshot.json`` and ``sysfs/``, a member twice, a member below a symlink or
  below a file (writing it would go through the link);
- hard links, devices, FIFOs and every other member type;
- a symlink that, resolved the way the kernel resolves it (through the other links of the
  archive, one component at a time), leaves ``sysfs/``. A lexical check is not enough: with
  ``a/up -> ..`` in place, ``b -> a/up/../..`` looks like ``sysfs`` on paper and is the parent
  of the unpacked tree on disk.

A link that does not resolve (a missing component, a loop) is kept: sysfs has such links
(``firmware_node`` into ACPI, which a snapshot leaves out) and opening one fails like on the
source machine, without leaving the tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from accelctl.snapshot import policy
from accelctl.snapshot.tarstream import DIR, FILE, LINK, TarMember

META_NAME = "snapshot.json"
TREE_DIR = "sysfs"

#: Symlinks followed while resolving one path before giving up (Linux: 40, then ELOOP).
MAX_LINK_HOPS = 40
_IMPLICIT_DIR = "implicit-dir"


class LayoutError(Exception):
    """The archive breaks a rule above (the message names the member)."""


@dataclass(frozen=True, slots=True)
class LayoutLimits:
    #: members: what a capture may hold, plus snapshot.json and sysfs/ itself
    max_entries: int = policy.MAX_ENTRIES + 2
    #: bytes in all regular files together
    max_file_bytes: int = policy.MAX_TOTAL_BYTES
    #: path components of a member name (the deepest real sysfs path is a few dozen)
    max_depth: int = 128
    #: bytes of one path component (NAME_MAX)
    max_component_bytes: int = 255


class SnapshotLayout:
    """Feed every member to `add` (in archive order), then call `finish`."""

    def __init__(self, limits: LayoutLimits = LayoutLimits()) -> None:
        self.limits = limits
        #: normalised name -> DIR | FILE | LINK | _IMPLICIT_DIR
        self.kinds: dict[str, str] = {}
        self.targets: dict[str, str] = {}
        self.entries = 0
        self.file_bytes = 0

    # -- one member at a time --------------------------------------------------------------------

    def add(self, m: TarMember) -> str:
        """Check one member; its normalised name (where it goes below the unpack directory)."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise LayoutError(f"more than {self.limits.max_entries} members")
        name = self._check_name(m.name)
        if m.kind not in (DIR, FILE, LINK):
            raise LayoutError(f"member {name!r} is {m.type_name}: only files, directories and symlinks")
        if name == META_NAME and m.kind != FILE:
            raise LayoutError(f"{META_NAME} is not a regular file")
        if name == TREE_DIR and m.kind != DIR:
            raise LayoutError(f"{TREE_DIR} is not a directory")
        self._claim_parents(name)
        known = self.kinds.get(name)
        if known is not None:
            if not (known == _IMPLICIT_DIR and m.kind == DIR):
                raise LayoutError(f"member {name!r} appears twice")
        self.kinds[name] = m.kind
        if m.kind == LINK:
            self._check_target(name, m.linkname)
            self.targets[name] = m.linkname
        elif m.kind == FILE:
            self.file_bytes += m.size
            if self.file_bytes > self.limits.max_file_bytes:
                raise LayoutError(f"files hold more than {self.limits.max_file_bytes >> 20} MiB")
        return name

    def _check_name(self, raw: str) -> str:
        if not raw or "\x00" in raw or "\\" in raw or raw.startswith("/"):
            raise LayoutError(f"unsafe member name {raw!r}")
        name = raw.rstrip("/")
        while name.startswith("./"):
            name = name[2:]
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise LayoutError(f"member {raw!r} escapes or is not a plain path")
        if len(parts) > self.limits.max_depth:
            raise LayoutError(f"member {raw[:120]!r}... is {len(parts)} levels deep (limit {self.limits.max_depth})")
        if any(len(p.encode()) > self.limits.max_component_bytes for p in parts):
            raise LayoutError(f"member {raw[:120]!r} has a name component over {self.limits.max_component_bytes} bytes")
        if parts[0] not in (TREE_DIR, META_NAME) or (parts[0] == META_NAME and len(parts) > 1):
            raise LayoutError(f"unexpected member {raw!r} (not an accelctl snapshot?)")
        return name

    def _claim_parents(self, name: str) -> None:
        """Every directory above `name` must be one (or become one implicitly), never a link or file."""
        kinds = self.kinds
        end = name.rfind("/")
        while end > 0:
            parent = name[:end]
            kind = kinds.get(parent)
            if kind == LINK:
                raise LayoutError(f"member {name!r} lies below the symlink {parent!r}")
            if kind == FILE:
                raise LayoutError(f"member {name!r} lies below the file {parent!r}")
            if kind is not None:
                return  # a directory: its own parents were claimed when it was added
            kinds[parent] = _IMPLICIT_DIR
            end = parent.rfind("/")

    def _check_target(self, name: str, target: str) -> None:
        if not target or "\x00" in target:
            raise LayoutError(f"link {name!r} has an empty target")
        if target.startswith("/"):
            raise LayoutError(f"link {name!r} -> {target!r} is absolute")

    # -- the whole archive -------------------------------------------------------------------------

    def finish(self) -> None:
        """Checks that need every member: a tree is there, and no link resolves out of it."""
        if self.kinds.get(TREE_DIR) not in (DIR, _IMPLICIT_DIR):
            raise LayoutError(f"no {TREE_DIR}/ tree in the archive (not an accelctl snapshot?)")
        for name, target in self.targets.items():
            resolved = self.resolve(name)
            if resolved is not None and resolved != TREE_DIR and not resolved.startswith(TREE_DIR + "/"):
                raise LayoutError(f"link {name!r} -> {target!r} points outside the tree (to {resolved or '.'!r})")

    def resolve(self, link: str) -> str | None:
        """Where `link` leads, following every link on the way like the kernel does; None when
        the path does not resolve (missing component, a file used as a directory, a loop).

        Raises:
            LayoutError: resolution climbs above the archive's root.
        """
        hops = [0]
        parts = self._walk(link.split("/")[:-1], self.targets[link], hops, link)
        return None if parts is None else "/".join(parts)

    def _walk(self, start: list[str], target: str, hops: list[int], link: str) -> list[str] | None:
        hops[0] += 1
        if hops[0] > MAX_LINK_HOPS:
            return None  # ELOOP: opening it fails, nothing is reached
        stack = list(start)
        comps = [c for c in target.split("/") if c not in ("", ".")]
        for i, comp in enumerate(comps):
            if comp == "..":
                if not stack:
                    raise LayoutError(f"link {link!r} -> {self.targets[link]!r} points outside the tree")
                stack.pop()
                continue
            stack.append(comp)
            key = "/".join(stack)
            kind = self.kinds.get(key)
            if kind is None:
                return None  # ENOENT
            if kind == LINK:
                stack = self._walk(stack[:-1], self.targets[key], hops, link)  # type: ignore[assignment]
                if stack is None:
                    return None
            elif kind == FILE and i < len(comps) - 1:
                return None  # ENOTDIR
        return stack

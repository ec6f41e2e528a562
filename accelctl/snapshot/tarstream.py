"""A bounded tar reader: members of an untrusted (optionally compressed) tar stream, with every
size checked before it is read.

Why not ``tarfile``: it reads a GNU long-name or pax header whole, whatever size the header
claims (a 1 MB archive claiming a 6 GB name took 6 GB of memory), and it ends quietly at a
truncated header, so a cut-off archive looked complete. Here each header, member and the whole
decompressed stream have a limit that is compared with the size a header declares before any
of it is read, the end-of-archive block is required, and a deadline bounds the time.

Only what snapshots need is understood: regular files, directories and symlinks, with names
from ustar (name + prefix), pax ``path``/``linkpath``/``size`` records or GNU ``L``/``K``
headers. Every other member type (hard links, devices, FIFOs, sparse files ...) is reported as
such, so the caller can refuse it by name.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 512

#: Member kinds yielded; anything else is ``other`` (with the tar type byte in `type_flag`).
FILE, DIR, LINK, OTHER = "file", "dir", "link", "other"

_REGULAR = (b"0", b"\0")
_TYPE_NAMES = {
    b"1": "a hard link", b"3": "a character device", b"4": "a block device", b"6": "a FIFO",
    b"7": "a contiguous file", b"S": "a sparse file", b"V": "a volume header",
}


class TarLimitError(Exception):
    """The stream is malformed, truncated, or exceeds a limit (the message says which)."""


@dataclass(frozen=True, slots=True)
class TarLimits:
    #: largest pax extended header or GNU long-name record (real ones are a few hundred bytes)
    max_header_bytes: int = 64 * 1024
    #: longest member name or link target (PATH_MAX)
    max_name_bytes: int = 4096
    #: largest member
    max_member_bytes: int = 64 * 1024
    #: header blocks of any kind (each member has one to three)
    max_headers: int = 1_000_000
    #: bytes decompressed in total (headers, data, padding)
    max_stream_bytes: int = 512 * 1024 * 1024
    #: seconds the whole read may take (None: no limit)
    max_seconds: float | None = 600.0


@dataclass(slots=True)
class TarMember:
    name: str
    kind: str
    mode: int
    size: int
    linkname: str = ""
    data: bytes = b""
    type_flag: bytes = b""

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type_flag, f"of tar type {self.type_flag!r}")


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """`raw` (positioned at the start) wrapped in the decompressor its magic bytes name."""
    head = raw.read(6)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    return raw


class _Reader:
    """Exact reads from the decompressed stream, counted against the stream and time limits."""

    def __init__(self, stream: BinaryIO, limits: TarLimits) -> None:
        self.stream = stream
        self.limits = limits
        self.total = 0
        self.deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds

    def read(self, n: int) -> bytes:
        if self.total + n > self.limits.max_stream_bytes:
            raise TarLimitError(f"unpacks to more than {self.limits.max_stream_bytes >> 20} MiB")
        try:
            data = self.stream.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as err:
            raise TarLimitError(f"damaged compressed data ({err})") from err
        if len(data) != n:
            raise TarLimitError("truncated: the archive ends in the middle of a member")
        self.total += n
        return data

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TarLimitError(f"took longer than {self.limits.max_seconds:g} s to read")


def _number(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:
        # base-256 (GNU): big sizes; a negative one (0xff lead) is nonsense here
        if field[0] == 0xFF:
            raise TarLimitError(f"negative {what} in a header")
        value = field[0] & 0x7F
        for b in field[1:]:
            value = (value << 8) | b
        return value
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarLimitError(f"bad {what} field {field!r} in a header") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    rest = block[:148] + block[156:]
    if stored == sum(rest) + 8 * 32:
        return True
    # some old writers summed signed chars
    return stored == sum(rest) - 256 * sum(1 for b in rest if b > 127) + 8 * 32


def _text(raw: bytes, limits: TarLimits, what: str) -> str:
    raw = raw.split(b"\0", 1)[0]
    if len(raw) > limits.max_name_bytes:
        raise TarLimitError(f"{what} of {len(raw)} bytes (limit {limits.max_name_bytes})")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TarLimitError(f"{what} {raw[:80]!r} is not UTF-8") from None


def _pax_records(data: bytes) -> dict[str, str]:
    """``"LEN key=value\\n"`` records (POSIX pax); LEN counts the whole record."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # padding
            break
        space = data.find(b" ", pos, pos + 20)
        if space < 0:
            raise TarLimitError("malformed pax header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarLimitError("malformed pax header") from None
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise TarLimitError("malformed pax header")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise TarLimitError("malformed pax header")
        try:
            out[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise TarLimitError("pax header is not UTF-8") from None
        pos = end
    return out


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def iter_members(stream: BinaryIO, limits: TarLimits = TarLimits()) -> Iterator[TarMember]:
    """The members of a decompressed tar stream, in order, with their data (regular files).

    Raises:
        TarLimitError: bad header or checksum, a limit exceeded, truncated or damaged stream,
            or no end-of-archive block.
    """
    rd = _Reader(stream, limits)
    headers = 0
    pending: dict[str, str] = {}  # pax / GNU records that apply to the next member
    while True:
        rd.check_time()
        block = rd.read(BLOCK)
        if block == bytes(BLOCK):
            return  # end of archive (what follows is padding, never read)
        headers += 1
        if headers > limits.max_headers:
            raise TarLimitError(f"more than {limits.max_headers} headers")
        if not _checksum_ok(block):
            raise TarLimitError("bad header checksum (damaged, or not a tar archive)")
        type_flag = block[156:157]
        size = _number(block[124:136], "size")
        if type_flag in (b"x", b"g", b"L", b"K"):
            if size > limits.max_header_bytes:
                raise TarLimitError(f"a {size}-byte extended header (limit {limits.max_header_bytes})")
            data = rd.read(_padded(size))[:size]
            if type_flag == b"x":
                pending.update(_pax_records(data))
            elif type_flag == b"L":
                pending["path"] = _text(data, limits, "long name")
            elif type_flag == b"K":
                pending["linkpath"] = _text(data, limits, "long link target")
            # b"g": global pax records (archive comments) carry nothing a snapshot needs
            continue
        name = pending.pop("path", None)
        if name is None:
            name = _text(block[0:100], limits, "name")
            if block[257:262] == b"ustar":
                prefix = _text(block[345:500], limits, "name prefix")
                if prefix:
                    name = f"{prefix}/{name}"
        if len(name.encode()) > limits.max_name_bytes:
            raise TarLimitError(f"a name of {len(name.encode())} bytes (limit {limits.max_name_bytes})")
        linkname = pending.pop("linkpath", None)
        if linkname is None:
            linkname = _text(block[157:257], limits, "link target")
        if "size" in pending:
            try:
                size = int(pending.pop("size"))
            except ValueError:
                raise TarLimitError("bad pax size record") from None
        pending.clear()
        mode = _number(block[100:108], "mode") & 0o7777
        if type_flag in _REGULAR:
            if size > limits.max_member_bytes:
                raise TarLimitError(f"member {name!r} is {size} bytes (limit {limits.max_member_bytes})")
            data = rd.read(_padded(size))[:size]
            yield TarMember(name, FILE, mode, size, data=data, type_flag=type_flag)
            continue
        if type_flag not in (b"5", b"2"):
            yield TarMember(name, OTHER, mode, size, linkname=linkname, type_flag=type_flag)
            return  # the caller refuses it; nothing after it is read
        if size:
            # directories and links carry no data; a size here is a malformed header
            raise TarLimitError(f"{'directory' if type_flag == b'5' else 'link'} {name!r} declares {size} bytes")
        if type_flag == b"5":
            yield TarMember(name, DIR, mode, 0, type_flag=type_flag)
        else:
            yield TarMember(name, LINK, mode, 0, linkname=linkname, type_flag=type_flag)

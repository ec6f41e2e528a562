"""The firmware model of one endpoint: device memory, identity, health, error log, features.

One rule for what survives (docs/simulator.md "What a device keeps"): **a daemon's exit and the
next one's start are a power cycle, exactly like a device reset**, and both keep the same things.

* Non-volatile, kept across both: device memory (a sparse file in the state directory, mapped
  MAP_SHARED, so every write is there at once), the logical address, the serial, the reset
  generation, the health counters (lifetime counts, as NVMe's SMART log: bytes, commands,
  power cycles, power-on seconds, unsafe shutdowns, resets, errors) and the error log. The small
  facts live in ``<bdf>.json`` beside the memory file, saved when a session ends (every command
  that disconnects), on a device reset and when the daemon stops.
* Volatile, back to power-on values on both: features (temperature threshold, power state, ...),
  temperature, and everything per session (queues, DMA maps, eventfds); injected faults.

Each power-on counts one power cycle and bumps the reset generation. A daemon that died without
stopping (SIGKILL, an injected ``daemon_death``) counts one unsafe shutdown at the next start and
loses what changed since the last save (counts of sessions still connected when it died).
"""

from __future__ import annotations

import json
import mmap
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from accelctl.protocol import abi

from accelctl.sim.private_dir import open_private_file, read_private_file

from .config import EndpointConfig
from .faults import valid_serial

TEMPERATURE_K = 318  # 45 C at idle
DEFAULT_TEMPERATURE_THRESHOLD_K = 358
FIRMWARE_SLOTS = 7
ACL = 3  # abort command limit (0-based: 4 outstanding)
AERL = 3  # async event request limit (0-based: 4 outstanding)
MDTS = 256 << 20  # max bytes per command
SGL_MAX_DESCRIPTORS = 256
MAX_QUEUE_ENTRIES = 4096


class Firmware:
    """State of one endpoint shared by all its sessions (connections)."""

    def __init__(self, config: EndpointConfig, state_dir: Path | None) -> None:
        self.config = config
        self.bdf = config.bdf
        self.memory_size = config.memory_size
        self.lock = threading.Lock()  # guards logs, features and persistent state (not memory)
        #: The state directory, opened once: every state file is opened relative to it, without
        #: following a link (security.md: a planted link must not redirect our writes).
        self._state_dir_fd: int | None = None
        self._state_name = config.bdf.replace(":", "_")
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._state_dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fd = open_private_file(f"{self._state_name}.mem", os.O_RDWR | os.O_CREAT, dir_fd=self._state_dir_fd)
            try:
                if os.fstat(fd).st_size != self.memory_size:
                    os.ftruncate(fd, self.memory_size)  # sparse: costs no disk until written
                self._mmap = mmap.mmap(fd, self.memory_size, mmap.MAP_SHARED)
            finally:
                os.close(fd)
        else:
            self._mmap = mmap.mmap(-1, self.memory_size, mmap.MAP_SHARED)
        self.memory = memoryview(self._mmap)
        self.removed = False
        #: Identity kept across power cycles (the counters and error log are kept too, below).
        self.persistent: dict[str, Any] = {"logical_address": 0, "serial": None}
        self.reset_gen = 0
        #: Lifetime counts, kept across power cycles; power_on_seconds holds the completed
        #: power-on periods (the current one is added when read or saved).
        self.counters: dict[str, int] = dict.fromkeys(abi.HEALTH_COUNTERS, 0)
        self.error_log: deque[bytes] = deque(maxlen=abi.ERROR_LOG_ENTRIES)
        if self._load_persistent().get("running"):
            self.counters["unsafe_shutdowns"] += 1  # the last daemon died without stopping
        self._power_on()
        self._save_persistent(running=True)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def error_count(self) -> int:
        return self.counters["error_log_entries"]

    def _power_on(self) -> None:
        """One power cycle: the volatile state back to its power-on values."""
        self.counters["power_cycles"] += 1
        self.reset_gen += 1
        self.powered_on_at = time.monotonic()
        self.features: dict[int, int] = {
            abi.Feature.TEMPERATURE_THRESHOLD: DEFAULT_TEMPERATURE_THRESHOLD_K,
            abi.Feature.NUMBER_OF_QUEUES: ((abi.MAX_QUEUES - 2) << 16) | (abi.MAX_QUEUES - 2),
            abi.Feature.INTERRUPT_COALESCING: 0,
            abi.Feature.ASYNC_EVENT_CONFIG: 0xFF,
            abi.Feature.KEEP_ALIVE_TIMER: 0,
            abi.Feature.POWER_STATE: abi.PowerState.ACTIVE,
        }
        self.temperature_k = TEMPERATURE_K

    def device_reset(self, *, new_serial: str | None = None) -> int:
        """A power cycle without the daemon stopping; returns the new reset generation. What is
        kept and what returns to power-on values is the same as across a daemon restart."""
        with self.lock:
            self._end_power_on_period()
            self.counters["device_resets"] += 1
            if new_serial is not None and valid_serial(new_serial):  # never persist what breaks IDENTIFY
                self.persistent["serial"] = new_serial
            self._power_on()
            self._save_persistent(running=True)
            return self.reset_gen

    def _end_power_on_period(self) -> None:
        now = time.monotonic()
        self.counters["power_on_seconds"] += int(now - self.powered_on_at)
        self.powered_on_at = now

    def checkpoint(self) -> None:
        """Save the non-volatile state now (a session ended: its counts and errors are kept)."""
        with self.lock:
            self._save_persistent(running=True)

    def scrub(self, start: int, length: int) -> None:
        """Zero [start, start+length) of device memory (page-aligned): the pages are given back
        (a hole punched in the sparse file) where the kernel can, else written with zeros."""
        if length <= 0:
            return
        try:
            self._mmap.madvise(mmap.MADV_REMOVE, start, length)
            return
        except (OSError, ValueError, AttributeError):
            pass
        zeros = bytes(min(length, 1 << 20))
        end = start + length
        while start < end:
            n = min(len(zeros), end - start)
            self.memory[start : start + n] = zeros[:n]
            start += n

    def close(self) -> None:
        """The daemon stops: save everything and mark the shutdown clean, then let go."""
        if self._state_dir_fd is not None:
            with self.lock:
                self._end_power_on_period()
                self._save_persistent(running=False)
            os.close(self._state_dir_fd)
            self._state_dir_fd = None
        self.memory.release()
        try:
            self._mmap.close()
        except BufferError:  # a command still holds a slice; the GC closes it later
            pass

    # --- identity ------------------------------------------------------------------------------

    @property
    def serial(self) -> str:
        return self.persistent.get("serial") or self.config.serial

    @property
    def logical_address(self) -> int:
        return int(self.persistent.get("logical_address", 0))

    def identify_controller(self) -> bytes:
        page = bytearray(abi.IDENTIFY_SIZE)
        abi.IDENTIFY_CONTROLLER.pack_into(
            page, 0, self.config.vendor_id & 0xFFFF, self.config.device_id & 0xFFFF,
            self.serial.encode()[:32], self.config.model.encode()[:40], self.config.firmware_rev.encode()[:8],
            abi.ABI_VERSION_WORD, abi.MAX_QUEUES, MAX_QUEUE_ENTRIES, ACL, AERL, SGL_MAX_DESCRIPTORS,
            MDTS, self.memory_size, _optional_io_bitmap(), self.reset_gen,
        )
        return bytes(page)

    def identify_endpoint(self) -> bytes:
        page = bytearray(abi.IDENTIFY_SIZE)
        abi.IDENTIFY_ENDPOINT.pack_into(
            page, 0, self.bdf.encode()[:16], self.logical_address, self.config.numa_node,
            self.config.bar0_size, self.serial.encode()[:32], self.config.model.encode()[:40],
        )
        return bytes(page)

    # --- logs -------------------------------------------------------------------------------------

    def health_log(self) -> bytes:
        c = dict(self.counters)
        c["power_on_seconds"] += int(time.monotonic() - self.powered_on_at)
        threshold = self.features[abi.Feature.TEMPERATURE_THRESHOLD]
        warning = abi.CRITICAL_WARNING_TEMPERATURE if self.temperature_k >= threshold else 0
        return abi.HEALTH_LOG.pack(
            warning, 0, self.temperature_k, threshold, self.features[abi.Feature.POWER_STATE],
            *(c[name] for name in abi.HEALTH_COUNTERS),
        )

    def error_log_page(self) -> bytes:
        with self.lock:
            entries = list(self.error_log)
        entries.reverse()  # newest first
        return b"".join(entries).ljust(abi.ERROR_LOG_ENTRY_SIZE * abi.ERROR_LOG_ENTRIES, b"\0")

    def firmware_log(self) -> bytes:
        rev = self.config.firmware_rev.encode()[:8]
        return abi.FIRMWARE_LOG.pack(1, rev, *([b""] * (FIRMWARE_SLOTS - 1)))

    def log_page(self, lid: int) -> bytes | None:
        if lid == abi.LogPage.HEALTH:
            return self.health_log()
        if lid == abi.LogPage.ERROR:
            return self.error_log_page()
        if lid == abi.LogPage.FIRMWARE:
            return self.firmware_log()
        return None

    def record_error(self, sqid: int, cid: int, status: int, opcode: int, dev_addr: int, length: int) -> None:
        with self.lock:
            self.counters["error_log_entries"] += 1
            self.error_log.append(
                abi.ERROR_LOG_ENTRY.pack(self.error_count, sqid, cid, status & 0xFFFE, opcode, dev_addr, length)
            )

    # --- features --------------------------------------------------------------------------------

    def get_feature(self, fid: int) -> int | None:
        if fid == abi.Feature.LOGICAL_ADDRESS:
            return self.logical_address
        return self.features.get(fid)

    def set_feature(self, fid: int, value: int) -> bool:
        """False when the feature is unknown or not changeable."""
        if fid == abi.Feature.LOGICAL_ADDRESS:
            with self.lock:
                self.persistent["logical_address"] = value & 0xFFFFFFFF
                self._save_persistent()
            return True
        if fid == abi.Feature.NUMBER_OF_QUEUES or fid not in self.features:
            return False
        if fid == abi.Feature.POWER_STATE and value not in tuple(abi.PowerState):
            return False
        self.features[fid] = value & 0xFFFFFFFF
        return True

    # --- persistence -------------------------------------------------------------------------------

    def _load_persistent(self) -> dict[str, Any]:
        """Take back what the last power-on saved; returns the well-typed facts read."""
        if self._state_dir_fd is None:
            return {}
        try:
            data = json.loads(read_private_file(f"{self._state_name}.json", dir_fd=self._state_dir_fd))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError):
            return {}  # a corrupt state file is treated as a fresh device, as firmware would
        if not isinstance(data, dict):
            return {}
        facts = _valid_persistent(data)
        for key in ("logical_address", "serial"):
            if key in facts:
                self.persistent[key] = facts[key]
        self.reset_gen = facts.get("reset_gen", 0)
        self.counters.update(facts.get("counters", {}))
        self.error_log.extend(facts.get("error_log", ()))
        return facts

    def _save_persistent(self, *, running: bool = True) -> None:
        """Write the non-volatile state (callers hold ``self.lock``); ``running`` False only
        from a clean stop, so a daemon that dies leaves True behind."""
        if self._state_dir_fd is None:
            return
        counters = dict(self.counters)
        if running:
            counters["power_on_seconds"] += int(time.monotonic() - self.powered_on_at)
        state = {
            **self.persistent, "reset_gen": self.reset_gen, "running": running, "counters": counters,
            "error_log": [entry.hex() for entry in self.error_log],
        }
        tmp, final = f"{self._state_name}.tmp", f"{self._state_name}.json"
        try:
            os.unlink(tmp, dir_fd=self._state_dir_fd)  # a leftover (or a planted link) goes
        except FileNotFoundError:
            pass
        fd = open_private_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=self._state_dir_fd)
        try:
            os.write(fd, json.dumps(state, sort_keys=True).encode())
        finally:
            os.close(fd)
        os.replace(tmp, final, src_dir_fd=self._state_dir_fd, dst_dir_fd=self._state_dir_fd)


def _valid_persistent(data: dict[str, Any]) -> dict[str, Any]:
    """The well-typed facts of a state file; a value of the wrong type or range is dropped (the
    file may be from an older version, or written by a bug: it must not break IDENTIFY forever)."""
    out: dict[str, Any] = {}
    la, serial, gen = data.get("logical_address"), data.get("serial"), data.get("reset_gen")
    if type(la) is int and 0 <= la <= 0xFFFFFFFF:
        out["logical_address"] = la
    if serial is None or valid_serial(serial):
        out["serial"] = serial
    if type(gen) is int and 0 <= gen < 0xFFFFFFFF:  # u32 in IDENTIFY, one more to come
        out["reset_gen"] = gen
    if type(data.get("running")) is bool:
        out["running"] = data["running"]
    counters = data.get("counters")
    if isinstance(counters, dict):
        out["counters"] = {name: value for name, value in counters.items()
                           if name in abi.HEALTH_COUNTERS and type(value) is int and 0 <= value < 1 << 62}
    entries = data.get("error_log")
    if isinstance(entries, list):
        out["error_log"] = [raw for raw in map(_error_entry, entries[-abi.ERROR_LOG_ENTRIES:]) if raw is not None]
    return out


def _error_entry(text: object) -> bytes | None:
    """One saved error log entry (hex of ERROR_LOG_ENTRY_SIZE bytes), or None when it is not one."""
    if not isinstance(text, str) or len(text) != 2 * abi.ERROR_LOG_ENTRY_SIZE:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _optional_io_bitmap() -> int:
    bits = 0
    for op in abi.IoOpcode:
        bits |= 1 << (31 if op == abi.IoOpcode.FENCE else (op & 31))
    return bits

"""The asyncio adapter, the torch adapter (when torch is importable) and the CLI commands."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys

import pytest

from accelctl.driver import aio
from accelctl.driver import commands as cmd
from accelctl.driver.session import Session


def test_asyncio_execute_and_gather(endpoint: str) -> None:
    async def main() -> list[int]:
        adev = aio.AsyncSession(Session(endpoint), asyncio.get_running_loop())
        async with adev:
            await adev.execute(cmd.fill(0, 256, 0x01020304))
            q = adev.queue
            cpls = await q.execute_many([cmd.fill(i * 64, 64, i) for i in range(64)])
            buf = adev.session.alloc_dma(64)
            await adev.execute(cmd.read(63 * 64, buf))
            value = int.from_bytes(buf.view[:4], "little")
            buf.close()
            return [int(c.ok) for c in cpls] + [value]

    result = asyncio.run(main())
    assert result[:-1] == [1] * 64 and result[-1] == 63


def test_torch_roundtrip_without_copies(endpoint: str) -> None:
    torch = pytest.importorskip("torch")
    from accelctl.driver import torch_adapter as ta

    with Session(endpoint) as dev:
        tensor, buf = ta.empty(dev, (256, 64), torch.float32)
        tensor.copy_(torch.arange(256 * 64, dtype=torch.float32).view(256, 64))
        sent = ta.to_device(dev, tensor, 0x10000)
        assert not sent.copied  # the tensor's storage is the DMA buffer
        back, back_buf = ta.from_device(dev, sent.device_tensor)
        assert torch.equal(back, tensor)
        # the returned tensor aliases the buffer the device wrote: no copy on the way back
        assert back.data_ptr() == ta._buffer_address(back_buf)
        back_buf.view[:4] = struct.pack("<f", 42.0)
        assert back[0, 0].item() == 42.0
        plain = torch.ones(10, dtype=torch.int64)
        assert ta.to_device(dev, plain, 0x20000).copied  # ordinary memory is staged once
        del tensor, back
        buf.close()
        back_buf.close()


def test_importing_accelctl_driver_does_not_import_numpy_or_torch() -> None:
    code = ("import sys, accelctl.driver.session, accelctl.driver.aio, accelctl.driver.torch_adapter;"
            "print(any(m in sys.modules for m in ('numpy', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accelctl", "--fixture", "one-card", *args],
                          input=stdin, capture_output=True, timeout=60)


def test_cli_admin_and_io_roundtrip() -> None:
    ident = _cli("admin", "identify", "0000:01:00.0", "--json")
    assert ident.returncode == 0, ident.stderr
    doc = json.loads(ident.stdout)
    assert doc["schema_version"] == 2 and doc["controller"]["firmware_rev"]
    payload = b"\x00\x01driver-core\xff" * 100
    wrote = _cli("io", "write", "0000:01:00.0", "-a", "0x3000", "--json", stdin=payload)
    assert wrote.returncode == 0, wrote.stderr
    assert json.loads(wrote.stdout)["bytes"] == len(payload)
    read = _cli("io", "read", "0000:01:00.0", "-a", "0x3000", "-n", str(len(payload)))
    assert read.returncode == 0 and read.stdout == payload  # state survives between commands
    same = _cli("io", "compare", "0000:01:00.0", "-a", "0x3000", "--json", stdin=payload)
    assert same.returncode == 0 and json.loads(same.stdout)["equal"]
    differ = _cli("io", "compare", "0000:01:00.0", "-a", "0x3000", "--json", stdin=payload[:-1] + b"?")
    assert differ.returncode == 7 and json.loads(differ.stdout)["first_difference"] == len(payload) - 1
    missing = _cli("admin", "identify", "0000:77:00.0", "--json")
    assert missing.returncode == 3 and json.loads(missing.stderr)["error"]["type"] == "DeviceNotFoundError"

"""Move CPU torch tensors to device memory and back without copies.

The trick is to let the tensor's storage *be* a DMA buffer: :func:`empty` returns a tensor made
with ``torch.frombuffer`` over a registered buffer, so ``to_device`` is a single WRITE command the
device executes straight out of the tensor's memory, and ``from_device`` returns a tensor aliasing
the buffer the device READ into. A tensor that does not live in DMA memory is staged through one
pooled buffer (one copy, said so in ``TransferResult.copied``).

torch is imported lazily, only by these functions: it is not a dependency of accelctl.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accelctl.driver import commands as cmds
from accelctl.driver.dma import DmaBuffer

if TYPE_CHECKING:
    from accelctl.driver.session import Session


@dataclass(frozen=True)
class DeviceTensor:
    """Where a tensor lives in device memory, and what it looks like."""

    dev_addr: int
    nbytes: int
    dtype: Any
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TransferResult:
    device_tensor: DeviceTensor
    copied: bool  # True when the tensor was staged through a pooled buffer (one host copy)


def _buffer_address(buf: DmaBuffer) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf.view))


def empty(session: Session, shape: tuple[int, ...], dtype: Any = None) -> tuple[Any, DmaBuffer]:
    """A CPU tensor whose storage is a new registered DMA buffer (fill it, then ``to_device``)."""
    import torch

    dtype = dtype or torch.float32
    count = 1
    for dim in shape:
        count *= dim
    itemsize = torch.empty((), dtype=dtype).element_size()
    buf = session.alloc_dma(max(1, count * itemsize))
    tensor = torch.frombuffer(buf.view, dtype=dtype, count=count).view(shape)
    return tensor, buf


def _containing_buffer(session: Session, tensor: Any) -> tuple[DmaBuffer, int] | None:
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    for buf in list(session.controller.buffers):
        base = _buffer_address(buf)
        if base <= start and end <= base + buf.size:
            return buf, start - base
    return None


def to_device(session: Session, tensor: Any, dev_addr: int, *, timeout: float | None = None) -> TransferResult:
    """Write a contiguous CPU tensor to device memory at ``dev_addr``."""
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        raise ValueError("to_device takes a contiguous CPU tensor")
    nbytes = tensor.numel() * tensor.element_size()
    desc = DeviceTensor(dev_addr, nbytes, tensor.dtype, tuple(tensor.shape))
    found = _containing_buffer(session, tensor)
    if found is not None:
        buf, offset = found
        session.execute(cmds.write(dev_addr, buf, offset, nbytes), timeout)
        return TransferResult(desc, copied=False)
    import torch

    staging = session.pool.get(nbytes)
    try:
        torch.frombuffer(staging.view, dtype=torch.uint8, count=nbytes).copy_(
            tensor.reshape(-1).view(torch.uint8))
        session.execute(cmds.write(dev_addr, staging, 0, nbytes), timeout)
    finally:
        session.pool.put(staging)
    return TransferResult(desc, copied=True)


def from_device(session: Session, desc: DeviceTensor, *, out: DmaBuffer | None = None,
                timeout: float | None = None) -> tuple[Any, DmaBuffer]:
    """Read a tensor back; returns (tensor aliasing the DMA buffer, that buffer). Close the buffer
    (or reuse it as ``out``) when the tensor is no longer needed."""
    import torch

    buf = out if out is not None else session.alloc_dma(max(1, desc.nbytes))
    session.execute(cmds.read(desc.dev_addr, buf, 0, desc.nbytes), timeout)
    count = desc.nbytes // torch.empty((), dtype=desc.dtype).element_size()
    return torch.frombuffer(buf.view, dtype=desc.dtype, count=count).view(desc.shape), buf

"""A full memory barrier callable from Python, shared by both ends of a ring (driver and device)."""

from __future__ import annotations

from collections.abc import Callable


def make_fence() -> Callable[[], object] | None:
    """A full memory barrier callable from Python (~0.2 us), or None where none is known.

    CPython gives no ordering beyond the CPU's, and x86 reorders a store with a later load
    (driver-core.md 2.3: thousands of store-buffering violations per 2 M iterations without a
    fence, none with one). A locked instruction is a full barrier on x86; glibc's
    ``pthread_spin_trylock`` executes one (``lock cmpxchg`` / ``xchg``) on every call, whatever
    the lock's state. Elsewhere (e.g. ARM64, where glibc uses an acquire-only exchange) this
    returns None and callers keep the always-kick protocol. ctypes is imported only here, on first
    use, so ``import accelctl`` stays cheap."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    try:
        import ctypes

        trylock = ctypes.CDLL(None).pthread_spin_trylock
    except (OSError, AttributeError):
        return None
    import functools

    # byref keeps the int alive; partial calls straight into ctypes (no Python frame).
    return functools.partial(trylock, ctypes.byref(ctypes.c_int(0)))

"""`watch` as a library: an iterator of events on a machine, filtered and bounded as asked.

    from accelctl.watch import watch_events
    for ev in watch_events(machine, interval=1.0, count=10):
        print(ev.to_dict())

The first reading of the machine (and, on the live /sys, the udev monitor) is taken when
`watch_events` returns, before the caller iterates: nothing that happens after the call is
missed. Iteration ends after `count` events or `duration` seconds; without either it runs until
the caller stops it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accelctl.watch.poll import Event, diff_states, read_state

if TYPE_CHECKING:
    from accelctl.machine import Machine

#: How often a tree without udev (fixtures, copies) is read again when no interval is asked for.
DEFAULT_POLL_S = 0.2
#: How often the live udev monitor comes back without an event (to poll and check the deadline).
UDEV_SLICE_S = 0.5


@dataclass(slots=True, frozen=True)
class WatchPlan:
    """What a watch is doing, for the caller to say (one line to a person)."""

    #: "udev" on the live /sys, "poll" elsewhere
    source: str
    #: seconds between readings of the tree (link/AER polls on the live /sys)
    interval_s: float | None
    #: functions watched at the start (accelerator functions, or every function with all_devices)
    functions: int
    all_devices: bool


class EventStream:
    """An iterator of events; `plan` says what it watches."""

    def __init__(
        self,
        machine: Machine,
        *,
        interval: float | None,
        all_devices: bool,
        count: int | None,
        duration: float | None,
    ) -> None:
        self._machine = machine
        self._interval = interval
        self._all = all_devices
        self._count = count
        self._deadline = time.monotonic() + duration if duration is not None else None
        self._state = read_state(machine, again=False)
        self._accel = {b for b, f in self._state.functions.items() if f.accelerator}
        live = machine.platform.kind == "linux"
        self._udev = None
        if live:
            from accelctl.watch.live import udev_events

            # started now, so nothing between this call and the first next() is missed
            self._udev = udev_events(min(interval or UDEV_SLICE_S, UDEV_SLICE_S))
        watched = len(self._state.functions) if all_devices else len(self._accel)
        step = interval if (interval is not None or live) else DEFAULT_POLL_S
        self.plan = WatchPlan("udev" if live else "poll", step, watched, all_devices)
        self._events = self._bounded(self._udev_stream() if live else self._poll_stream())

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def __next__(self) -> Event:
        return next(self._events)

    # -- bounds and filter ---------------------------------------------------------------------

    def _wanted(self, ev: Event) -> bool:
        return self._all or bool(ev.detail.get("accelerator", ev.bdf in self._accel))

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _bounded(self, raw: Iterator[Event | None]) -> Iterator[Event]:
        seen = 0
        for ev in raw:
            if ev is not None and self._wanted(ev):
                yield ev
                seen += 1
                if self._count is not None and seen >= self._count:
                    return
            if self._expired():
                return

    # -- sources -------------------------------------------------------------------------------

    def _poll_stream(self) -> Iterator[Event | None]:
        """The tree read again every step; None after each reading without a change."""
        step = self._interval or DEFAULT_POLL_S
        with_link_aer = self._interval is not None
        while True:
            left = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            time.sleep(step if left is None else min(step, left))
            new = read_state(self._machine)
            events = diff_states(self._state, new, with_link_aer=with_link_aer)
            self._state = new
            yield from events
            yield None

    def _udev_stream(self) -> Iterator[Event | None]:
        """udev events as they come; with an interval, link and AER changes polled in between."""
        assert self._udev is not None
        step = self._interval
        next_poll = time.monotonic() + step if step is not None else None
        for ev in self._udev:
            yield ev
            if next_poll is not None and step is not None and time.monotonic() >= next_poll:
                new = read_state(self._machine)
                for e in diff_states(self._state, new, with_link_aer=True):
                    if e.action in ("link", "aer"):
                        yield e
                self._state, next_poll = new, time.monotonic() + step


def watch_events(
    machine: Machine,
    *,
    interval: float | None = None,
    all_devices: bool = False,
    count: int | None = None,
    duration: float | None = None,
) -> EventStream:
    """Events on `machine` as they happen (see the module docstring).

    interval: also poll link state and AER counters every `interval` seconds (link and aer
        events); on trees without udev it is also how often the tree is read (default 0.2 s).
    all_devices: every PCI function, not only accelerator cards (their switch ports included).
    count, duration: stop after this many events, or this many seconds.
    """
    return EventStream(machine, interval=interval, all_devices=all_devices, count=count, duration=duration)

"""The driver core's view of an endpoint during a reset: identify (serial, model, logical
address) and putting a lost logical address back. Only endpoints a driver serves can be probed
(simulated ones today); elsewhere the probe serves nothing and the checks rest on sysfs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from accelctl.errors import DriverError

IDENTIFY_ATTEMPTS = 3
#: An identify round trip is a few milliseconds; this bounds one that hangs.
IDENTIFY_TIMEOUT_S = 5.0


@dataclass(slots=True, frozen=True)
class Identity:
    serial: str | None
    model: str | None
    #: (card, endpoint, global id) the device stores, None when it holds none
    logical_address: tuple[int, int, int] | None


class DriverProbe:
    def __init__(self, sockets: dict[str, str] | None = None, *, timeout_s: float = IDENTIFY_TIMEOUT_S) -> None:
        self.sockets = dict(sockets or {})
        self.timeout_s = min(IDENTIFY_TIMEOUT_S, timeout_s)

    def serves(self, bdf: str) -> bool:
        return bdf in self.sockets

    def identify(self, bdf: str) -> Identity | None:
        """identify + identify_endpoint; None when no session could be opened in
        IDENTIFY_ATTEMPTS tries (never loops longer)."""
        from accelctl.driver.session import Session

        t = self.timeout_s
        for attempt in range(IDENTIFY_ATTEMPTS):
            try:
                with Session(self.sockets[bdf], admin_timeout_s=t, ready_timeout_s=t, control_timeout_s=t) as s:
                    ctrl = s.identify()
                    ep = s.identify_endpoint()
            except (DriverError, OSError):
                if attempt + 1 < IDENTIFY_ATTEMPTS:
                    time.sleep(0.05)
                continue
            la = ep.get("logical_address")
            return Identity(ctrl.get("serial"), ctrl.get("model"),
                            (la["card"], la["endpoint"], la["global_id"]) if la else None)
        return None

    def set_logical_address(self, bdf: str, la: tuple[int, int, int]) -> None:
        from accelctl.driver.session import Session
        from accelctl.protocol import abi

        with Session(self.sockets[bdf], admin_timeout_s=self.timeout_s) as s:
            s.set_feature(abi.Feature.LOGICAL_ADDRESS, abi.pack_logical_address(*la))

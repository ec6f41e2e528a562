"""The syntax of device names: which form a piece of text is, before looking anything up.

Forms (case-insensitive, surrounding blanks ignored):

=====================  ==============================  =======================================
form                   example                         means
=====================  ==============================  =======================================
long BDF               ``0000:41:00.0``                that PCI function
short BDF              ``41:00.0``                     that function in whichever domain has it
card                   ``card3``                       card 3 (all its endpoints)
card endpoint          ``card3.ep1``                   endpoint 1 of card 3
global id              ``7`` (or ``gid7``)             the endpoint with global id 7
serial                 ``00-11-22-33-44-55-66-77``     the function(s) with that DSN
=====================  ==============================  =======================================

The forms cannot be confused: a BDF always has ``:`` and ``.``, a serial has seven ``-``, a
global id is digits only, and card names start with ``card``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from accelctl.errors import InvalidAddressError
from accelctl.pci.bdf import Bdf

_CARD = re.compile(r"^card(\d+)$")
_CARD_EP = re.compile(r"^card(\d+)\.ep(\d+)$")
_GLOBAL_ID = re.compile(r"^(?:gid)?(\d+)$")
_SERIAL = re.compile(r"^[0-9a-f]{2}(?:-[0-9a-f]{2}){7}$")
_SHORT_BDF = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
#: Digits-only global ids this long are a typo, not a device (and keep int() cheap).
_MAX_ID_DIGITS = 9


class NameForm(str, enum.Enum):
    BDF = "bdf"
    SHORT_BDF = "short_bdf"
    CARD = "card"
    CARD_ENDPOINT = "card_endpoint"
    GLOBAL_ID = "global_id"
    SERIAL = "serial"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class DeviceName:
    """A parsed device name: its form and the numbers in it."""

    text: str
    form: NameForm
    bdf: Bdf | None = None
    card: int | None = None
    endpoint: int | None = None
    global_id: int | None = None
    serial: str | None = None


def parse_device_name(text: str) -> DeviceName:
    """Classify `text` as one of the accepted forms.

    Raises:
        InvalidAddressError: it is none of them (or a BDF field is out of range).
    """
    t = text.strip().lower()
    if not t:
        raise InvalidAddressError(text, "empty name")
    if ":" in t:
        bdf = Bdf.parse(t)  # raises InvalidAddressError with the reason
        form = NameForm.SHORT_BDF if _SHORT_BDF.match(t) else NameForm.BDF
        return DeviceName(text, form, bdf=bdf)
    if m := _CARD_EP.match(t):
        return DeviceName(text, NameForm.CARD_ENDPOINT, card=int(m.group(1)), endpoint=int(m.group(2)))
    if m := _CARD.match(t):
        return DeviceName(text, NameForm.CARD, card=int(m.group(1)))
    if m := _GLOBAL_ID.match(t):
        if len(m.group(1)) > _MAX_ID_DIGITS:
            raise InvalidAddressError(text, "global id too large")
        return DeviceName(text, NameForm.GLOBAL_ID, global_id=int(m.group(1)))
    if _SERIAL.match(t):
        return DeviceName(text, NameForm.SERIAL, serial=t)
    raise InvalidAddressError(text)

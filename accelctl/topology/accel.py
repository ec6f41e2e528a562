"""Which PCI functions are accelerators: one table of rules (docs/accelerators.md says the same).

A function is an accelerator when the first rule that matches says so, in this order:

1. the user's own ids (``--accel-id`` and ``$ACCELCTL_ACCEL_IDS``, one syntax for both);
2. a built-in vendor:device entry for an ML accelerator whose class code does not say so;
3. a class rule: processing accelerators (``12``), 3D controllers (``0302``), other display
   controllers (``0380``: AMD Instinct, Intel Data Center GPU Max), co-processors (``0b40``: Xeon
   Phi, NEC Vector Engine), and VGA controllers (``0300``) only from GPU vendors, never a BMC's
   VGA (ASPEED, Matrox).

Each rule has a stable key (``class:0b40``, ``id:1ac1:089a``, ``user:1bcf:*``) that the JSON
carries per function, so a script can see why something counts.

User syntax, for the option and the environment alike: a comma-separated list (the option is
repeatable too) of ``VVVV:DDDD``, ``VVVV:*`` and ``class:CC`` / ``class:CCSS`` / ``class:CCSSPP``
(a class prefix of 2, 4 or 6 hex digits).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from accelctl.errors import InvalidAcceleratorIdError

if TYPE_CHECKING:
    from accelctl.topology.model import PciFunction

#: Environment variable with extra accelerator ids, in the same syntax as ``--accel-id``.
ACCEL_IDS_ENV = "ACCELCTL_ACCEL_IDS"

#: Vendors whose VGA-class (0300) functions are compute GPUs. Every other vendor's 0300 function
#: is a display: the BMC's VGA (ASPEED 1a03, Matrox 102b) on nearly every server, or an
#: integrated GPU. Intel is left out on purpose: its 0300 functions are mostly integrated
#: graphics, and its data-centre GPUs are class 0380.
GPU_VENDORS: dict[int, str] = {0x10DE: "NVIDIA", 0x1002: "AMD"}


class ClassRule(NamedTuple):
    """A class-code prefix (`digits` hex digits of the 24-bit class) that marks accelerators."""

    prefix: int
    digits: int
    description: str

    @property
    def key(self) -> str:
        return f"class:{self.prefix:0{self.digits}x}"

    def matches(self, class_code: int) -> bool:
        return class_code >> (4 * (6 - self.digits)) == self.prefix


#: Class rules, most specific first. 0300 is not here: it counts only from GPU_VENDORS.
CLASS_RULES: tuple[ClassRule, ...] = (
    ClassRule(0x0302, 4, "3D controller (compute GPU without display)"),
    ClassRule(0x0380, 4, "display controller, other (AMD Instinct, Intel Data Center GPU Max)"),
    ClassRule(0x0B40, 4, "co-processor (Intel Xeon Phi, NEC SX-Aurora Vector Engine)"),
    ClassRule(0x12, 2, "processing accelerator"),
)
_VGA = 0x0300

#: ML accelerators whose class code is not one of the classes above (system peripheral 0880 and
#: the like), by vendor:device.
KNOWN_IDS: dict[tuple[int, int], str] = {
    (0x1AC1, 0x089A): "Google Coral Edge TPU (class 0880, system peripheral)",
    (0x1D0F, 0x7064): "AWS Inferentia (NeuronDevice)",
    (0x1D0F, 0x7164): "AWS Trainium (NeuronDevice)",
    (0x1D0F, 0x7264): "AWS Inferentia2 (NeuronDevice)",
    (0x1D0F, 0x7364): "AWS Trainium2 (NeuronDevice)",
    (0x1D95, 0x0001): "Graphcore Colossus GC2 IPU",
    (0x1D95, 0x0002): "Graphcore Colossus GC1 IPU",
}


class AcceleratorMatcher:
    """Decides whether a function is an accelerator, and by which rule (see the module doc).

    Build one per command with `from_env(extra_ids)`; it is cheap to call once per function.
    """

    __slots__ = ("ids", "vendors", "classes")

    def __init__(self, extra_ids: Iterable[str] = ()) -> None:
        self.ids: set[tuple[int, int]] = set()
        self.vendors: set[int] = set()
        #: user class prefixes as (prefix, digits)
        self.classes: set[tuple[int, int]] = set()
        for item in extra_ids:
            for part in item.split(","):
                if part.strip():
                    self.add(part)

    @classmethod
    def from_env(cls, extra_ids: Iterable[str] = ()) -> AcceleratorMatcher:
        """The user's `extra_ids` plus $ACCELCTL_ACCEL_IDS.

        Raises:
            InvalidAcceleratorIdError: an id in either is malformed (the message names which).
        """
        env = os.environ.get(ACCEL_IDS_ENV, "")
        try:
            env_matcher = cls([env])
        except InvalidAcceleratorIdError as err:
            raise InvalidAcceleratorIdError(err.text, f"in ${ACCEL_IDS_ENV}: {err.reason}") from None
        matcher = cls(extra_ids)
        matcher.ids |= env_matcher.ids
        matcher.vendors |= env_matcher.vendors
        matcher.classes |= env_matcher.classes
        return matcher

    def add(self, item: str) -> None:
        """Add one user id (``VVVV:DDDD``, ``VVVV:*`` or ``class:CC[SS[PP]]``).

        Raises:
            InvalidAcceleratorIdError: not in that syntax.
        """
        text = item.strip().lower()
        head, sep, tail = text.partition(":")
        if not sep:
            raise InvalidAcceleratorIdError(item, "no ':'")
        if head == "class":
            if len(tail) not in (2, 4, 6) or not _is_hex(tail):
                raise InvalidAcceleratorIdError(item, "a class is 2, 4 or 6 hex digits, e.g. class:0b40")
            self.classes.add((int(tail, 16), len(tail)))
            return
        if not _is_hex(head) or len(head) > 4:
            raise InvalidAcceleratorIdError(item, "the vendor is 4 hex digits")
        if tail == "*":
            self.vendors.add(int(head, 16))
        elif _is_hex(tail) and len(tail) <= 4:
            self.ids.add((int(head, 16), int(tail, 16)))
        else:
            raise InvalidAcceleratorIdError(item, "the device is 4 hex digits or *")

    def rule_for(self, vendor: int | None, device: int | None, class_code: int | None) -> str | None:
        """The key of the first rule that makes these ids an accelerator, or None."""
        if self.ids or self.vendors or self.classes:
            if vendor is not None and (vendor, device) in self.ids:
                return f"user:{vendor:04x}:{device:04x}"
            if vendor in self.vendors:
                return f"user:{vendor:04x}:*"
            if class_code is not None:
                for prefix, digits in self.classes:
                    if class_code >> (4 * (6 - digits)) == prefix:
                        return f"user:class:{prefix:0{digits}x}"
        if vendor is not None and (vendor, device) in KNOWN_IDS:
            return f"id:{vendor:04x}:{device:04x}"
        if class_code is None:
            return None
        for rule in CLASS_RULES:
            if rule.matches(class_code):
                return rule.key
        if class_code >> 8 == _VGA and vendor in GPU_VENDORS:
            return f"gpu:{vendor:04x}"
        return None

    def match(self, fn: PciFunction) -> str | None:
        """The rule that makes `fn` an accelerator, or None."""
        return self.rule_for(fn.vendor_id, fn.device_id, fn.class_code)

    def __call__(self, fn: PciFunction) -> bool:
        return self.match(fn) is not None


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def describe_rule(key: str) -> str:
    """A sentence for a rule key (docs/accelerators.md has the same table)."""
    kind, _, rest = key.partition(":")
    if kind == "user":
        return f"named by --accel-id / ${ACCEL_IDS_ENV} ({rest})"
    if kind == "id":
        vendor, device = (int(x, 16) for x in rest.split(":"))
        return KNOWN_IDS.get((vendor, device), rest)
    if kind == "gpu":
        return f"VGA-class GPU from {GPU_VENDORS.get(int(rest, 16), rest)}"
    for rule in CLASS_RULES:
        if rule.key == key:
            return rule.description
    return key


"""Manifests: TOML files saying what a machine should have (docs/manifest.md).

The simplest one is four keys under ``[expect]``; ``[[model]]`` and ``[[card]]`` tables refine it
per model (vendor:device) and per card (by the port it hangs below, or its physical slot).
Expectations are about accelerator cards and their endpoints only. Anything malformed raises
ManifestError naming the file, the line and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelctl.errors import InvalidAddressError, ManifestError
from accelctl.pci.bdf import Bdf

_WIDTHS = (1, 2, 4, 8, 12, 16, 32)


@dataclass(frozen=True, slots=True)
class LinkFloor:
    """Minimum link an accelerator's path to its root port must train at (None: no minimum)."""

    speed_gts: float | None = None
    width: int | None = None


@dataclass(frozen=True, slots=True)
class ModelExpect:
    vendor_id: int
    device_id: int
    cards: int | None
    endpoints_per_card: int | None
    link: LinkFloor
    line: int | None = None

    @property
    def id_text(self) -> str:
        return f"{self.vendor_id:04x}:{self.device_id:04x}"


@dataclass(frozen=True, slots=True)
class CardExpect:
    """One card the manifest places: below `port` (a BDF) or in physical `slot`."""

    port: str | None
    slot: str | None
    vendor_id: int | None
    device_id: int | None
    endpoints: int | None
    numa_node: int | None
    serial: str | None
    link: LinkFloor
    line: int | None = None

    @property
    def where(self) -> str:
        return f"port {self.port}" if self.port else f"slot {self.slot}"


@dataclass(frozen=True, slots=True)
class Manifest:
    path: str
    cards: int | None = None
    endpoints_per_card: int | None = None
    link: LinkFloor = LinkFloor()
    vendor_id: int | None = None
    device_id: int | None = None
    models: tuple[ModelExpect, ...] = ()
    card_entries: tuple[CardExpect, ...] = ()

    def model_for(self, vendor_id: int | None, device_id: int | None) -> ModelExpect | None:
        for m in self.models:
            if (m.vendor_id, m.device_id) == (vendor_id, device_id):
                return m
        return None

    def entry_for(self, port: str | None, slot: str | None) -> CardExpect | None:
        for c in self.card_entries:
            if (c.port is not None and c.port == port) or (c.slot is not None and c.slot == slot):
                return c
        return None

    def endpoints_for(self, vendor_id: int | None, device_id: int | None, entry: CardExpect | None) -> int | None:
        """Most specific endpoint count: the card entry, then its model, then ``[expect]``."""
        if entry is not None and entry.endpoints is not None:
            return entry.endpoints
        model = self.model_for(vendor_id, device_id)
        if model is not None and model.endpoints_per_card is not None:
            return model.endpoints_per_card
        return self.endpoints_per_card

    def link_for(self, vendor_id: int | None, device_id: int | None, entry: CardExpect | None) -> LinkFloor:
        """Per field, the most specific minimum: card entry, model, then ``[expect]``."""
        layers = [self.link]
        model = self.model_for(vendor_id, device_id)
        if model is not None:
            layers.append(model.link)
        if entry is not None:
            layers.append(entry.link)
        speed = width = None
        for layer in layers:
            speed = layer.speed_gts if layer.speed_gts is not None else speed
            width = layer.width if layer.width is not None else width
        return LinkFloor(speed, width)


# --- loading ---------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file.

    Raises:
        ManifestError: unreadable, not TOML, unknown key, wrong type or impossible value.
    """
    from accelctl._toml import read_input_text

    return parse_manifest(read_input_text(path, ManifestError, "manifest"), path=str(path))


def parse_manifest(text: str, *, path: str = "<manifest>") -> Manifest:
    """Validate manifest text (`path` only names the source in errors)."""
    from accelctl._toml import parse_toml

    data = parse_toml(text, path=path, error=ManifestError)
    lines = _KeyLines(text)
    top_known = {"expect", "model", "card", "description", "schema_version"}
    for key in data:
        if key not in top_known:
            raise ManifestError(f"unknown table or key {key!r} (known: {', '.join(sorted(top_known))})",
                                path=path, line=lines.find(None, 0, key), key=key)
    v = _Validator(path, lines)
    if "schema_version" in data and data["schema_version"] != 1:
        raise v.error("only schema_version = 1 is understood", None, 0, "schema_version")
    if "description" in data and not isinstance(data["description"], str):
        raise v.error("expected a string", None, 0, "description")
    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise v.error("[expect] must be a table", None, 0, "expect")
    v.known(expect, "expect", 0, {"cards", "endpoints_per_card", "min_link_speed_gts",
                                  "min_link_width", "id"})
    vendor = device = None
    if "id" in expect:
        vendor, device = v.pci_id(expect["id"], "expect", 0, "id")
    models = tuple(v.model(t, i) for i, t in enumerate(v.table_list(data, "model")))
    seen: set[tuple[int, int]] = set()
    for m in models:
        if (m.vendor_id, m.device_id) in seen:
            raise v.error(f"model {m.id_text} is listed twice", "model", models.index(m), "id")
        seen.add((m.vendor_id, m.device_id))
    entries = tuple(v.card(t, i) for i, t in enumerate(v.table_list(data, "card")))
    return Manifest(
        path=path,
        cards=v.count(expect, "expect", 0, "cards", minimum=0),
        endpoints_per_card=v.count(expect, "expect", 0, "endpoints_per_card", minimum=1),
        link=v.link(expect, "expect", 0),
        vendor_id=vendor,
        device_id=device,
        models=models,
        card_entries=entries,
    )


class _KeyLines:
    """Line numbers of tables and keys (tomllib gives none): enough to point at the spot."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"""^\s*["']?([A-Za-z0-9_-]+)["']?\s*=""")

    def __init__(self, text: str) -> None:
        # (table, index of the array element or 0) -> {key: line}, plus the header line under None
        self.lines: dict[tuple[str | None, int], dict[str | None, int]] = {(None, 0): {}}
        counters: dict[str, int] = {}
        current: tuple[str | None, int] = (None, 0)
        for no, raw in enumerate(text.splitlines(), start=1):
            m = self._HEADER.match(raw)
            if m:
                name = m.group(2)
                index = 0
                if m.group(1) == "[[":
                    index = counters.get(name, 0)
                    counters[name] = index + 1
                current = (name, index)
                self.lines.setdefault(current, {})[None] = no
                self.lines[(None, 0)].setdefault(name, no)
                continue
            k = self._KEY.match(raw)
            if k:
                self.lines.setdefault(current, {}).setdefault(k.group(1), no)

    def find(self, table: str | None, index: int, key: str | None) -> int | None:
        keys = self.lines.get((table, index), {})
        return keys.get(key, keys.get(None))


@dataclass
class _Validator:
    path: str
    lines: _KeyLines

    def error(self, problem: str, table: str | None, index: int, key: str | None) -> ManifestError:
        where = key
        if table is not None:
            where = f"{table}[{index}].{key}" if table in ("model", "card") else f"{table}.{key}"
            if key is None:
                where = table
        return ManifestError(problem, path=self.path, line=self.lines.find(table, index, key), key=where)

    def known(self, t: dict[str, Any], table: str, index: int, allowed: set[str]) -> None:
        for key in t:
            if key not in allowed:
                raise self.error(f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                                 table, index, key)

    def table_list(self, data: dict[str, Any], name: str) -> list[dict[str, Any]]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.error(f"{name} must be an array of tables: write [[{name}]]", None, 0, name)
        return value

    def count(self, t: dict[str, Any], table: str, index: int, key: str, *, minimum: int) -> int | None:
        if key not in t:
            return None
        value = t[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected an integer, got {_typename(value)}", table, index, key)
        if value < minimum:
            raise self.error(f"must be at least {minimum}, got {value}", table, index, key)
        return value

    def link(self, t: dict[str, Any], table: str, index: int) -> LinkFloor:
        speed = width = None
        if "min_link_speed_gts" in t:
            value = t["min_link_speed_gts"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(f"expected a number of GT/s such as 16.0, got {_typename(value)}",
                                 table, index, "min_link_speed_gts")
            if not 0 < value <= 128:
                raise self.error(f"{value} GT/s is not a PCIe speed (2.5 .. 64)", table, index,
                                 "min_link_speed_gts")
            speed = float(value)
        if "min_link_width" in t:
            value = t["min_link_width"]
            if isinstance(value, bool) or not isinstance(value, int) or value not in _WIDTHS:
                raise self.error(f"link width must be one of {', '.join(map(str, _WIDTHS))}, got {value!r}",
                                 table, index, "min_link_width")
            width = value
        return LinkFloor(speed, width)

    def pci_id(self, value: Any, table: str, index: int, key: str) -> tuple[int, int]:
        m = re.fullmatch(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})", value) if isinstance(value, str) else None
        if m is None:
            raise self.error(f"expected \"vvvv:dddd\" (hex vendor:device), got {value!r}", table, index, key)
        return int(m.group(1), 16), int(m.group(2), 16)

    def model(self, t: dict[str, Any], i: int) -> ModelExpect:
        self.known(t, "model", i, {"id", "cards", "endpoints_per_card", "min_link_speed_gts", "min_link_width"})
        if "id" not in t:
            raise self.error("each [[model]] needs id = \"vvvv:dddd\"", "model", i, None)
        vendor, device = self.pci_id(t["id"], "model", i, "id")
        return ModelExpect(vendor, device, self.count(t, "model", i, "cards", minimum=0),
                           self.count(t, "model", i, "endpoints_per_card", minimum=1),
                           self.link(t, "model", i), self.lines.find("model", i, None))

    def card(self, t: dict[str, Any], i: int) -> CardExpect:
        self.known(t, "card", i, {"port", "slot", "id", "endpoints", "numa_node", "serial",
                                  "min_link_speed_gts", "min_link_width"})
        if ("port" in t) == ("slot" in t):
            raise self.error("each [[card]] needs exactly one of port = \"dddd:bb:dd.f\" or slot = \"NAME\"",
                             "card", i, None)
        port = slot = None
        if "port" in t:
            try:
                port = str(Bdf.parse(t["port"])) if isinstance(t["port"], str) else None
            except InvalidAddressError:
                port = None
            if port is None:
                raise self.error(f"expected a port address such as \"0000:00:01.1\", got {t['port']!r}",
                                 "card", i, "port")
        else:
            slot = t["slot"] if isinstance(t["slot"], (str, int)) and not isinstance(t["slot"], bool) else None
            if slot is None:
                raise self.error(f"expected a slot name, got {_typename(t['slot'])}", "card", i, "slot")
            slot = str(slot)
        vendor = device = None
        if "id" in t:
            vendor, device = self.pci_id(t["id"], "card", i, "id")
        serial = t.get("serial")
        if serial is not None and not isinstance(serial, str):
            raise self.error(f"expected a string, got {_typename(serial)}", "card", i, "serial")
        return CardExpect(port, slot, vendor, device, self.count(t, "card", i, "endpoints", minimum=1),
                          self.count(t, "card", i, "numa_node", minimum=0),
                          serial.lower() if serial else None, self.link(t, "card", i),
                          self.lines.find("card", i, None))


def _typename(v: object) -> str:
    return {bool: "a boolean", int: "an integer", str: "a string", float: "a number",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)

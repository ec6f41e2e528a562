"""Shell completion of the things a user names: devices, fixtures, features.

Typer calls these at completion time (bash, zsh, fish: completions/). Nothing has run yet, so the
machine is opened here from the global options already typed (before or after the command
words) or their environment variables. A completion never fails: on any error it offers nothing.
"""

from __future__ import annotations

from typing import Any

import typer


def _global(ctx: typer.Context, name: str) -> Any:
    root = ctx.find_root()
    return root.params.get(name) if root.params else None


def device_names(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Accelerator endpoints and cards by the names people type: cardN.epM, cardN, BDF."""
    try:
        from accelctl.machine import open_machine

        machine = open_machine(sysfs_root=_global(ctx, "sysfs_root"), fixture=_global(ctx, "fixture"),
                               accel_ids=_global(ctx, "accel_id") or ())
        topo = machine.topology()
        names: list[tuple[str, str]] = []
        for card in topo.cards:
            names.append((card.name, f"card, {len(card.endpoints)} endpoints"))
            for bdf, name in zip(card.endpoints, card.endpoint_names()):
                names.append((name, bdf))
                names.append((bdf, name))
    except Exception:  # noqa: BLE001 - a completion offers nothing rather than a traceback
        return []
    return [(n, h) for n, h in names if n.startswith(incomplete)]


def fixture_names(incomplete: str) -> list[tuple[str, str]]:
    """Bundled fixtures with their descriptions (zsh and fish show them beside the name)."""
    from accelctl.sim.fixture.bundled import describe_bundled_fixtures, list_bundled_fixtures

    try:
        described = describe_bundled_fixtures()
    except Exception:  # noqa: BLE001 - a broken spec loses the descriptions, not the names
        described = [(name, "") for name in list_bundled_fixtures()]
    return [(n, text) for n, text in described if n.startswith(incomplete)]


def feature_names(incomplete: str) -> list[str]:
    from accelctl.endpoints import feature_names as names

    return [n for n in names() if n.startswith(incomplete)]

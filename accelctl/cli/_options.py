"""Option types shared by commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from accelctl.cli import _complete

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (diagnostics on stderr).")
]

#: The one endpoint an admin/IO command talks to; TAB completes the names of this machine.
DeviceArg = Annotated[
    str,
    typer.Argument(
        help="The endpoint: cardN.epM, BDF (0000:05:00.0 or 05:00.0), global id or serial.",
        autocompletion=_complete.device_names,
        show_default=False,
    ),
]

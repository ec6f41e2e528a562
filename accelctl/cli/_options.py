"""Option types shared by commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (diagnostics on stderr).")
]

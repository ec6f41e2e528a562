"""The one table layout policy, for terminals and pipes.

* Piped (stdout not a terminal): nothing is wrapped or cut, whatever $COLUMNS says; each row is
  one line, so ``grep DOWNTRAINED`` finds the device it is about.
* At a terminal: an identifier column (BDF, name, serial, code) is never wrapped or cut; a prose
  column (model, link, message) wraps at spaces, never inside a word. When even that does not
  fit, whole columns are left out, least needed first, and the output says which.
* A matrix too wide for the terminal is shown in column groups (pages), each naming its columns.

Rich would otherwise shrink the widest column, cutting identifiers with an ellipsis (``1002:7…``),
or fold words mid-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

#: Space between two columns (rich's default padding of 1 on each side, no outer edge).
GAP = 2


@dataclass(frozen=True)
class Column:
    header: str
    #: an identifier is never wrapped or cut; prose wraps at spaces
    identifier: bool = True
    #: when columns must be left out, the lowest goes first; None: never left out
    keep: int | None = None
    justify: str = "left"


@dataclass
class Layout:
    table: Table
    #: headers of the columns left out to fit the terminal
    left_out: list[str]

    def notice(self, width: int) -> str | None:
        if not self.left_out:
            return None
        return (f"not shown at {width} columns: {', '.join(self.left_out)} "
                "(a wider terminal, a pipe or --json shows everything)")


def plain_width(markup: str) -> tuple[int, int]:
    """(widest line, longest word) of a cell written in rich markup."""
    from rich.text import Text

    text = Text.from_markup(markup).plain
    lines = text.splitlines() or [""]
    words = text.split() or [""]
    return max(len(line) for line in lines), max(len(w) for w in words)


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> Layout:
    """A rich Table of `rows` (cells in rich markup) laid out for `width` columns (None: a pipe,
    no limit)."""
    from rich.table import Table

    natural = [len(c.header) for c in columns]
    least = [len(c.header) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            line, word = plain_width(cell)
            natural[i] = max(natural[i], line)
            least[i] = max(least[i], line if columns[i].identifier else word)
    shown = list(range(len(columns)))

    gap = GAP

    def total(widths: Sequence[int], idx: Sequence[int]) -> int:
        return sum(widths[i] for i in idx) + gap * (len(idx) - 1)

    widths = list(natural)
    if width is not None and total(least, shown) > width:
        gap = 1  # tighter, before anything is left out
    if width is not None and total(natural, shown) > width:
        droppable = sorted((c.keep, i) for i, c in enumerate(columns) if c.keep is not None)
        while total(least, shown) > width and droppable:
            shown.remove(droppable.pop(0)[1])
            gap = GAP if total(least, shown) + (GAP - 1) * (len(shown) - 1) <= width else 1
        spare = width - total(least, shown)
        prose = [i for i in shown if not columns[i].identifier]
        want = sum(natural[i] - least[i] for i in prose)
        for i in shown:
            widths[i] = least[i]
        if want and spare > 0:
            for i in prose:
                widths[i] += min(natural[i] - least[i], spare * (natural[i] - least[i]) // want)
    padding = (0, 1) if gap == GAP else (0, 1, 0, 0)
    table = Table(box=None, header_style="bold", pad_edge=False, padding=padding)
    for i in shown:
        c = columns[i]
        table.add_column(c.header, width=widths[i], no_wrap=c.identifier or width is None,
                         overflow="fold", justify=c.justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    left_out = [c.header for i, c in enumerate(columns) if i not in shown]
    return Layout(table, left_out)


def column_groups(label_width: int, cell_width: int, count: int, width: int | None, gap: int = 1) -> list[range]:
    """Split `count` equal columns after a label column into groups that fit `width`."""
    if width is None:
        return [range(count)]
    fit = max(1, (width - label_width) // (cell_width + gap))
    pages = -(-count // fit)
    per = -(-count // pages)  # as even as the pages allow: 8 + 8, not 9 + 7
    return [range(start, min(count, start + per)) for start in range(0, count, per)]


def terminal_width() -> int | None:
    """The width to lay out for: the terminal's, or None when stdout is not a terminal."""
    from accelctl.cli._output import console, stdout_is_terminal

    return console().width if stdout_is_terminal() else None

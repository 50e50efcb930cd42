"""How the CLI shows things: tables, panels and values, with rich.

Every command prints through these, so a table looks the same everywhere:
`None` is blank, booleans are yes/no (never Python's True/False), lists are
comma-separated, times are the API's ISO text shortened to the second.
Text is never read as rich markup (a device id or an error with `[...]` in
it prints as it is). On a pipe or a file, lines are not wrapped at 80
columns: a table stays one line per row for grep.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text  # re-exported: ui.Text

PIPE_WIDTH = 200  # columns when stdout is not a terminal


def console(err: bool = False, file=None) -> Console:
    out = file or (sys.stderr if err else sys.stdout)
    tty = hasattr(out, "isatty") and out.isatty()
    return Console(file=out, width=None if tty else PIPE_WIDTH, highlight=False, markup=False,
                   emoji=False, force_terminal=tty or None, soft_wrap=False)


def cell(value: Any) -> str:
    """One value as a person reads it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        return value[:19].replace("T", " ")  # 2026-11-28T04:45:01.367Z -> 2026-11-28 04:45:01
    return str(value)


def table(columns: Iterable[str], rows: Iterable[Iterable[Any]], title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for name in columns:
        t.add_column(name.upper(), overflow="fold")
    for row in rows:
        t.add_row(*(Text(cell(v)) for v in row))
    return t


def print_table(columns, rows, title: str | None = None, empty: str | None = None, file=None) -> None:
    rows = list(rows)
    con = console(file=file)
    if not rows and empty:
        con.print(Text(empty))
        return
    con.print(table(columns, rows, title))


def panel(title: str, fields: Iterable[tuple[str, Any]]) -> Panel:
    """Label/value pairs in a box; pairs whose value is None are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in fields:
        if value is not None and value != "":
            grid.add_row(Text(label), Text(cell(value)))
    return Panel(grid, title=Text(title), title_align="left", expand=False)


def print_json(doc) -> None:
    print(json.dumps(doc, sort_keys=True))

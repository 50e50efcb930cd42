"""Follow something in the cloud until it finishes: a live view on a
terminal (rich.live redraws in place), a line per change on a pipe or a log.

    doc = follow(lambda: api.get(...), view, lines, done, out=sys.stderr)

`view(doc)` is the rich renderable drawn on a terminal; `lines(doc)` the
plain lines a log gets, printed again only when they change; `done(doc)`
says when to stop. The last document is returned.
"""

from __future__ import annotations

import sys
import time

from tools.cli import ui


def follow(fetch, view, lines, done, out=None, interval_s: float = 0.5, timeout_s: float | None = None,
           live: bool | None = None) -> dict:
    out = out or sys.stdout
    live = out.isatty() if live is None else live
    start = time.monotonic()
    if live:
        from rich.live import Live

        doc = fetch()
        with Live(view(doc), console=ui.console(file=out), refresh_per_second=4, transient=False) as screen:
            while not done(doc) and (timeout_s is None or time.monotonic() - start < timeout_s):
                time.sleep(interval_s)
                doc = fetch()
                screen.update(view(doc))
        return doc
    last: list[str] | None = None
    while True:
        doc = fetch()
        shown = lines(doc)
        if shown != last:
            out.write("".join(line + "\n" for line in shown))
            out.flush()
            last = shown
        if done(doc) or (timeout_s is not None and time.monotonic() - start >= timeout_s):
            return doc
        time.sleep(interval_s)

"""One MicroPython process, many cases: the set-up the schema tests that run the firmware share.

The host sends the unix-sim board (as its board.json has it) on the first
line of stdin and one case per line after it; the device script loads the
node table once and runs `body` for each line (bound to `line`), printing
one JSON line per case.
"""

from __future__ import annotations

import json
import textwrap

from shared_schema.boards import load_board

BOARD = load_board("unix-sim")
DEVICE_BOARD = {k: v for k, v in json.loads(BOARD.model_dump_json()).items()
                if k in ("name", "port", "program_max_bytes", "pins", "reserved", "nodes")}

_HEAD = """
import sys, json, gc
from fleetflow.program import load_program
from fleetflow.nodetable import load_table
from fleetflow.errors import FFError
{setup}
board = json.loads(sys.stdin.readline())
table = load_table(board["nodes"])
while True:
    line = sys.stdin.readline()
    if not line:
        break
{body}"""


def run_lines(mpy, body: str, lines: list[str], setup: str = "", heap: str = "256k") -> list:
    """Run `body` under MicroPython once per line of `lines`; the JSON values it printed."""
    script = _HEAD.format(setup=textwrap.dedent(setup).strip(),
                          body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "))
    stdin = "\n".join([json.dumps(DEVICE_BOARD)] + lines) + "\n"
    return [json.loads(out) for out in mpy.check(script, stdin=stdin, heap=heap).lines]

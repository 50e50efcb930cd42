"""Firmware tests run under MicroPython through the `mpy` fixture
(tools/sim/pytest_micropython_sim.py). `device(body)` batches many checks into
one MicroPython process: the body runs after a prelude of helpers, fills the
dict OUT, and the fixture returns OUT as the process printed it."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = r'''
import json
import fleetflow.nodetable as nt
from fleetflow.errors import FFError
from fleetflow.program import load_program
from fleetflow.interp import Interpreter
from fleetflow.records import RunBuffer
from fleetflow.hal import get_hal

TABLE = nt.load_table()
BOARD = json.loads(open(BOARD_PATH).read())
OUT = {}

def prog(nodes, edges=(), vars=None, limits=None, board="unix-sim"):
    d = {"f": 1, "flow": "t", "ver": 1, "board": board, "vars": vars or {},
         "nodes": [{"id": "n%d" % (i + 1), "type": n[0], "params": n[1]} if type(n) is tuple else n
                   for i, n in enumerate(nodes)],
         "edges": [list(e) for e in edges]}
    if limits:
        d["limits"] = limits
    return json.dumps(d)

def load(nodes, edges=(), **kw):
    return load_program(prog(nodes, edges, **kw), TABLE, BOARD)

def interp(nodes, edges=(), sim=None, published=None, records=None, **kw):
    hal = get_hal("unix-sim", sim or {})
    pub = None
    if published is not None:
        pub = lambda t, p, q, r: published.append([t, json.loads(p), q, r])
    it = Interpreter(load(nodes, edges, **kw), hal, records=records, publish=pub)
    return it, hal

def refuse(data, board=BOARD):
    try:
        load_program(data, TABLE, board)
    except FFError as e:
        return e.args[0]
    return None

def ports(rec):
    return [[n["id"], n["port"]] for n in rec["nodes"]]

def done():
    print(json.dumps(OUT))
'''




@pytest.fixture(scope="module")
def device(mpy):
    board = str(ROOT / "boards" / "unix-sim.json")

    def run(body: str, heap: str = "512k", stdin: str | None = None):
        code = f"BOARD_PATH = {board!r}\n" + PRELUDE + "\n" + body + "\ndone()\n"
        return mpy.json(code, heap=heap, stdin=stdin)
    return run

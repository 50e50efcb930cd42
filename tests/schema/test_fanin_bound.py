"""The memory budget at publish: the worst case of a program's fan-in runs
(a node runs once per message; branches that meet again multiply messages),
against the board's budget, pointing at the node where the device would fail
the run (firmware/fleetflow/fanin.py, MAX_RUNS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared_schema import graph
from shared_schema.boards import load_board
from shared_schema.compiler import FANIN_MAX, CompileError, compile_program, fanin_limit
from shared_schema.validate import validate_flow
from tools.bench.runaway import ladder

from .test_validate_table import BASE, STEPS

REPO = Path(__file__).resolve().parents[2]
UNIX = load_board("unix-sim")


def merge(roots: int) -> dict:
    """`roots` injects into one log node: an exec fires every root once."""
    nodes = [{"id": f"i{k}", "type": "inject", "config": {}} for k in range(roots)]
    nodes.append({"id": "all", "type": "log", "config": {}})
    return {"name": "merge", "definition": {"nodes": nodes,
                                             "connections": [{"source": f"i{k}", "target": "all"} for k in range(roots)]}}


@pytest.mark.parametrize("n, edges, worst", [
    (3, [(0, 0, 1), (1, 0, 2)], [1, 1, 1]),                                # a chain
    (4, [(0, 0, 1), (0, 0, 2), (1, 0, 3), (2, 0, 3)], [1, 1, 1, 2]),       # a diamond: the join runs twice
    (2, [(0, 0, 1), (0, 1, 1)], [1, 1]),                                   # a switch's two ports into one node: one message
    (3, [(0, 0, 2), (1, 0, 2)], [1, 1, 2]),                                # two roots
    (5, [(0, 0, 1), (0, 0, 2), (1, 0, 3), (2, 0, 3), (3, 0, 4), (0, 0, 4)], [1, 1, 1, 2, 3]),
])
def test_worst_messages_per_node(n, edges, worst):
    assert graph.worst_messages(n, edges) == worst


# (flow, board heap_bytes, pointer of the problem or None, fan-in runs named in the message)
CASES = [
    ("the seed graph", BASE, 65536, None, None),
    ("the step form", STEPS, 65536, None, None),
    ("3 stages: 2+4+4+8+8 = 26 fan-in runs", ladder(3), 65536, None, None),
    ("4 stages: the first switch of stage 4 makes 34", ladder(4), 65536, "/definition/nodes/10", 34),
    ("8 stages (the runaway): refused at the same node", ladder(8), 65536, "/definition/nodes/10", 34),
    ("32 roots into one node: exactly the budget", merge(32), 65536, None, None),
    ("33 roots into one node", merge(33), 65536, "/definition/nodes/33", 33),
    ("a board with half the heap: budget 16", ladder(3), 32768, "/definition/nodes/8", 18),
]


@pytest.mark.parametrize("name, flow, heap, ptr, runs", CASES, ids=[c[0] for c in CASES])
def test_publish_bound_table(name, flow, heap, ptr, runs):
    board = UNIX.model_copy(update={"heap_bytes": heap})
    problems = validate_flow(flow, board)
    if ptr is None:
        assert problems == []
        return
    assert [p.pointer for p in problems] == [ptr]
    msg = problems[0].message
    limit = fanin_limit(board)
    assert msg.startswith("memory budget: ") and f"makes {runs} fan-in runs" in msg and f"over the {limit} " in msg
    with pytest.raises(CompileError) as exc:
        compile_program(flow, board, "flow_x", 1)
    assert exc.value.problems == problems


def test_budget_is_the_devices_on_our_boards():
    for name in ("unix-sim", "esp32-devkitc", "rp2-pico-w"):
        assert fanin_limit(load_board(name)) == FANIN_MAX == 32
    firmware = (REPO / "firmware" / "fleetflow" / "fanin.py").read_text()
    assert f"MAX_RUNS = const({FANIN_MAX})" in firmware


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.json")), ids=lambda p: p.name)
def test_examples_are_within_the_bound(path):
    flow = json.loads(path.read_text())
    assert validate_flow(flow, "unix-sim") == []

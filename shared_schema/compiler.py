"""Definition + board -> device program (docs/program-format.md).

`compile_program(body, board, flow_id, version)` validates the body fully,
orders the nodes topologically (ties keep the definition's order), fills every
param with its default, and encodes the program canonically: same definition,
board, flow id and version -> same bytes, same sha256. A program over the
board's `program_max_bytes` is refused like any other problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared_schema import graph
from shared_schema.boards import Board, load_board
from shared_schema.catalog import canonical_json
from shared_schema.problems import Problem
from shared_schema.validate import Analysis, analyse

FORMAT = 1
# validate_flow measures the program with this stand-in for the flow id (as
# long as a UUID plus a prefix) and version, so a flow that validates also
# compiles under any real id up to that length.
_PROBE_FLOW_ID = "f" * 40
_PROBE_VERSION = 999_999


class CompileError(Exception):
    """The definition cannot be compiled for the board; `problems` says why, all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:5]) + (" ..." if len(problems) > 5 else ""))


@dataclass(frozen=True)
class CompiledProgram:
    data: bytes  # canonical JSON: what travels to the device and what `sha256` covers
    sha256: str
    size: int
    flow: str = ""
    ver: int = 0
    board: str = ""

    @property
    def text(self) -> str:
        return self.data.decode("ascii")


def build_program(a: Analysis, board: Board, flow_id: str, version: int) -> dict[str, Any]:
    """The program as a dict, from an analysis without problems."""
    order = graph.topo_order(len(a.nodes), a.edges)
    position = {old: new for new, old in enumerate(order)}
    nodes = []
    for old in order:
        nd = a.nodes[old]
        entry: dict[str, Any] = {"id": nd.id, "type": nd.type, "params": dict(nd.params)}
        if nd.on_failure != "stop":
            entry["on_failure"] = nd.on_failure
        if nd.retries:
            entry["retries"] = nd.retries
            if nd.backoff_ms is not None:
                entry["backoff_ms"] = nd.backoff_ms
        nodes.append(entry)
    edges = sorted([position[src], port, position[dst]] for src, port, dst in a.edges)
    return {
        "f": FORMAT,
        "flow": flow_id,
        "ver": version,
        "board": board.name,
        "vars": {name: value for name, (_type, value) in sorted(a.variables.items())},
        "nodes": nodes,
        "edges": edges,
    }


def encode(program: dict) -> bytes:
    return canonical_json(program)


def _size_problem(size: int, a: Analysis, board: Board) -> Problem | None:
    if size <= board.program_max_bytes:
        return None
    return Problem(a.nodes_ptr, f"the compiled program is {size} bytes; board {board.name!r} allows {board.program_max_bytes} "
                                f"(program_max_bytes): remove nodes, or shorten ids and string params")


# The device's memory budget for fan-in (firmware/fleetflow/fanin.py,
# MAX_RUNS): a run fails once it would make more fan-in runs (runs of nodes
# that got several messages) than this. Each keeps a record row and a message
# until the record is shipped, at most ~256 bytes on a 64-bit port; the
# budget is an eighth of the board's heap: heap_bytes // 2048 fan-in runs,
# never more than the device's own limit (docs/decisions.md).
FANIN_MAX = 32
FANIN_RUN_BYTES = 256


def fanin_limit(board: Board) -> int:
    return min(FANIN_MAX, board.heap_bytes // 8 // FANIN_RUN_BYTES)


def fanin_problem(a: Analysis, board: Board) -> Problem | None:
    """The memory-budget problem of a valid analysis: the worst case of its
    fan-in runs per run, counted in execution order, at the node that passes
    the board's budget (where the device would fail the run)."""
    limit = fanin_limit(board)
    worst = graph.worst_messages(len(a.nodes), a.edges)
    total = 0
    for i in graph.topo_order(len(a.nodes), a.edges):
        if worst[i] < 2:
            continue
        total += worst[i]
        if total > limit:
            nd = a.nodes[i]
            return Problem(nd.ptr, f"memory budget: branches that meet again multiply messages; node {nd.id!r} can get "
                                   f"{worst[i]} messages in one run, which makes {total} fan-in runs (a node run once "
                                   f"per message) by here, over the {limit} a run may hold (the device fails the run there; "
                                   f"the budget is an eighth of the board's {board.heap_bytes}-byte heap): "
                                   f"merge branches fewer times in a row, or split the flow")
    return None


def size_problem(a: Analysis, board: Board) -> Problem | None:
    """The size-budget problem of a valid analysis, measured with a long stand-in flow id."""
    data = encode(build_program(a, board, _PROBE_FLOW_ID, _PROBE_VERSION))
    return _size_problem(len(data), a, board)


def compile_program(body: Any, board: Board | str, flow_id: str, version: int, catalog: dict | None = None) -> CompiledProgram:
    """Compile one flow version for one board; raises CompileError with every problem."""
    board = load_board(board)
    if not isinstance(flow_id, str) or not 0 < len(flow_id) <= 64:
        raise CompileError([Problem("", f"flow id must be a string of 1 to 64 characters, got {flow_id!r}")])
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CompileError([Problem("", f"version must be an integer >= 0, got {version!r}")])
    a = analyse(body, board, catalog)
    if a.problems:
        raise CompileError(a.problems)
    data = encode(build_program(a, board, flow_id, version))
    problem = _size_problem(len(data), a, board) or fanin_problem(a, board)
    if problem:
        raise CompileError([problem])
    return CompiledProgram(data, hashlib.sha256(data).hexdigest(), len(data), flow_id, version, board.name)

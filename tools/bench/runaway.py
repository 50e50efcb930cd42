"""runaway: a flow that doubles its messages at every stage, on a board-sized heap.

The flow of issue 9: an inject, then per stage two switches whose two ports
both lead into the stage's counter, which feeds the next stage's switches
(25 nodes for 8 stages, inside every documented limit). Prints, per number
of stages:
- `refused_at`: the JSON pointer of the cloud's publish problem (the memory
  budget, shared_schema.compiler.fanin_problem), or null;
- sent to the interpreter anyway (the program compiled without that check,
  the firmware compiled by mpy-cross, MicroPython at `-X heapsize=112k` by
  default): the run's `status` and `err`, its record's `rows` and
  `record_json_bytes`, and `held_bytes` (heap the buffered record keeps,
  after a collect);
`ok` when every run fails with the memory budget's reason and no MemoryError
escapes. Before the budget (issue 9, the same script on the firmware of
1f97d29): MemoryError at 112k for 7 and 8 stages; at 192k the step budget
stopped them at 237/234 rows, 23,734/23,431-byte records, 28,800 B held.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from tools.sim.pytest_micropython_sim import BIN, MPY_LIB, build_mpy

STAGES = (7, 8)

SCRIPT = r'''
import gc, json, sys
import fleetflow.nodetable as nt
from fleetflow.program import load_program
from fleetflow.interp import Interpreter
from fleetflow.records import RunBuffer

table = nt.load_table()
for line in sys.stdin:
    p = load_program(line, table)
    it = Interpreter(p, None, RunBuffer(4))
    gc.collect()
    free0 = gc.mem_free()
    try:
        rec = it.run_now(exec_id="runaway", now_ms=0, compact=True)
        rows = len(rec[-4] or ()) + sum(1 for k in range(p.n) if rec[k] is not None)
        err = rec[-2]
        rec = None
        gc.collect()
        held = free0 - gc.mem_free()
        size = len(it.records.peek_json())
        out = {"status": "failed" if err else "completed", "err": err, "rows": rows,
               "held_bytes": held, "record_json_bytes": size}
    except MemoryError:
        out = {"status": "MemoryError"}
    it.stop()
    it = p = None
    gc.collect()
    print(json.dumps(out))
'''


def ladder(stages: int) -> dict:
    """The flow, in the cloud's graph form (what `POST /flows` takes)."""
    nodes = [{"id": "n1", "type": "inject", "config": {}}]
    conns = []
    prev = "n1"
    for k in range(stages):
        a, b, x = f"s{k}a", f"s{k}b", f"x{k + 1}"
        nodes += [{"id": a, "type": "switch", "config": {"op": "ge", "value": 0}},
                  {"id": b, "type": "switch", "config": {"op": "ge", "value": 0}},
                  {"id": x, "type": "counter", "config": {}}]
        conns += [{"source": prev, "target": a}, {"source": prev, "target": b}]
        for s in (a, b):
            conns += [{"source": s, "target": x, "port": 0}, {"source": s, "target": x, "port": 1}]
        prev = x
    return {"name": f"ladder {stages}", "definition": {"nodes": nodes, "connections": conns}}


def unchecked_program(flow: dict, board: str = "unix-sim") -> bytes:
    """The flow compiled as the cloud would, but without the memory budget's
    refusal: what an older cloud sent."""
    from shared_schema.boards import load_board
    from shared_schema.compiler import build_program, encode
    from shared_schema.validate import analyse

    a = analyse(flow, board)
    if a.problems:
        raise ValueError(f"the flow has problems: {a.problems}")
    return encode(build_program(a, load_board(board), "flow_runaway", 1))


def add_arguments(parser) -> None:
    parser.add_argument("--heap", default="112k", help="MicroPython -X heapsize (default 112k, the agent's target)")


def run(args) -> dict:
    from shared_schema.validate import validate_flow

    heap = getattr(args, "heap", "112k")
    fw = build_mpy()
    programs = [unchecked_program(ladder(k)) for k in STAGES]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ff_bench_runaway.py"
        src.write_text(SCRIPT)
        subprocess.run([str(BIN / "mpy-cross"), "-o", str(src.with_suffix(".mpy")), src.name], cwd=tmp, check=True)
        src.unlink()
        env = {"MICROPYPATH": f"{tmp}:{fw}:{MPY_LIB}", "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(BIN / "micropython"), "-X", f"heapsize={heap}", "-m", "ff_bench_runaway"],
                              input="\n".join(p.decode() for p in programs) + "\n",
                              capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        return {"ok": False, "error": (proc.stderr or proc.stdout).strip()[-2000:], "heap": heap}
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    result: dict = {"heap": heap, "command": f"fleetflow bench runaway --json --heap {heap}"}
    ok = len(runs) == len(STAGES)
    for k, prog, got in zip(STAGES, programs, runs):
        problems = validate_flow(ladder(k), "unix-sim")
        got["refused_at"] = problems[0].pointer if problems else None
        got["program_sha256"] = hashlib.sha256(prog).hexdigest()[:12]
        result[f"stages_{k}"] = got
        ok = ok and got["status"] == "failed" and (got.get("err") or "").startswith("memory budget: ")
    result["ok"] = ok
    return result

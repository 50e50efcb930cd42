"""Rehearsal: a deployment's version run on simulated twins before any real device gets it.

When a deployment with `rehearse` on is started, the driver (cloud/driver.py)
asks `begin` first. The deployment stays `pending` (phase `rehearsal`) while
`plan` reads what the twins need, `run_plan` runs them (no database: in a
worker thread, child processes) and `record` keeps the result. A passed
rehearsal lets the start through; a failed one fails the deployment with
the node's error as its reason and quarantines the version: no command was
ever sent.

The twins: for each target board (at most BOARDS_MAX), the real firmware
bundle (tools/sim/simdevice.py's unix-sim bundle: the loader, interpreter and
node code a board runs, with the simulated HAL) under the MicroPython unix
port runs tools/mpy/twin_run.py twice, with the version the targets run now (the
baseline: the most common flow and version among them) and with the
candidate, both fed the sensor readings that targets recorded under the
baseline (their latest runs, cloud.engine.rehearsal.recorded_inputs), on a
fake clock. The comparison and the verdict are cloud.engine.rehearsal's.
Cost: 2 processes per board, one after the other, each bounded by
TWIN_TIMEOUT_S (a program runs in milliseconds; the bound is for a runaway).
"""

from __future__ import annotations

import json
import secrets as _random
import subprocess
import time
from collections import Counter
from pathlib import Path

from peewee import fn
from shared_schema.compiler import compile_program

from cloud.engine import rehearsal as core
from cloud.errors import Conflict
from cloud.models import Deployment, DeploymentEvent, Device, FlowVersion, NodeRecord, Program, RunRecord, Target
from cloud.store import webhooks
from cloud.store.flows import quarantine_version

RUNS_DEFAULT = 20
BOARDS_MAX = 3
SAMPLE_TARGETS = 50  # targets looked at for the baseline and the recorded readings
RECORDS_MAX = 100  # recorded runs replayed at most
TWIN_TIMEOUT_S = 30.0
STALE_S = 300.0  # a rehearsal "running" this long was lost with its cloud process: may start again
TWIN = Path(__file__).resolve().parent.parent / "tools" / "mpy" / "twin_run.py"


def begin(dep_id: str, now: float) -> bool:
    """Called on start: True when a rehearsal must run first (it is marked running)."""
    dep = Deployment.get_or_none(Deployment.id == dep_id)
    if dep is None or dep.status != "pending" or not dep.rehearsal:
        return False
    r = dep.rehearsal
    if r.get("status") in ("passed", "off"):
        return False
    if r.get("status") == "running" and now - r.get("started_at", 0) < STALE_S:
        raise Conflict(f"deployment {dep_id} is being rehearsed: it starts by itself when the rehearsal passes",
                       current_status=dep.status)
    if r.get("status") == "failed":
        return False  # the deployment failed with it: the engine refuses the start
    Deployment.update(rehearsal=dict(r, status="running", started_at=now), phase="rehearsal",
                      rev=_random.token_hex(8)).where(Deployment.id == dep_id).execute()
    DeploymentEvent.create(deployment=dep_id, at=now, kind="rehearsal", device="", detail={"status": "running"})
    return True


def plan(dep_id: str) -> dict:
    """What the twins need: per board the candidate's and the baseline's programs and the replayed readings."""
    dep = Deployment.get_by_id(dep_id)
    runs = int((dep.rehearsal or {}).get("runs") or RUNS_DEFAULT)
    sample = [t.device for t in Target.select(Target.device).where(Target.deployment == dep_id)
              .order_by(Target.position).limit(SAMPLE_TARGETS)]
    devices = list(Device.select().where(Device.id.in_(sample)))
    running = Counter((d.flow, d.ver) for d in devices if d.flow and d.ver)
    base_key = running.most_common(1)[0][0] if running else None
    base_fv = (FlowVersion.get_or_none((FlowVersion.flow == base_key[0]) & (FlowVersion.version == base_key[1]))
               if base_key else None)
    readers = [d.id for d in devices if base_key and (d.flow, d.ver) == base_key]
    rows_by_record: list = []
    if readers:
        records = list(RunRecord.select(RunRecord.id).where(
            RunRecord.device.in_(readers) & (RunRecord.flow == base_key[0]) & (RunRecord.ver == base_key[1]))
            .order_by(RunRecord.received_at.desc(), RunRecord.id.desc()).limit(RECORDS_MAX))
        ids = sorted(r.id for r in records)
        if ids:
            rows_by_record = [(n.node, n.out, n.err) for n in NodeRecord.select().where(
                NodeRecord.record.in_(ids) & NodeRecord.type.in_(core.INPUT_TYPES)).order_by(NodeRecord.record,
                                                                                             NodeRecord.id)]
    boards = []
    programs = {p.board: p.data for p in Program.select().where(Program.deployment == dep_id)}
    target_boards = [b for b, in Target.select(Target.board).where(Target.deployment == dep_id)
                     .group_by(Target.board).order_by(fn.COUNT(Target.id).desc()).tuples()][:BOARDS_MAX]
    for board in target_boards:
        if board not in programs:
            continue
        baseline = None
        if base_fv is not None and board in (base_fv.boards or [board]):
            try:
                baseline = compile_program(base_fv.body, board, base_fv.flow, base_fv.version).text
            except Exception:  # noqa: BLE001: the baseline no longer compiles: compare with nothing
                baseline = None
        sim = core.recorded_inputs(baseline, rows_by_record) if baseline and rows_by_record else {}
        boards.append({"board": board, "candidate": programs[board], "baseline": baseline, "sim": sim,
                       "readings": sum(len(v.get("script", v)) if isinstance(v, dict) else len(v)
                                       for part in sim.values() for v in part.values())})
    return {"deployment": dep_id, "flow": dep.flow, "version": dep.version, "runs": runs,
            "baseline": {"flow": base_key[0], "version": base_key[1]} if base_fv else None,
            "inputs_from": readers[:10], "boards": boards}


def _twin(board: str, program: str, sim: dict, runs: int) -> dict:
    """One twin run: {"records": [...], "done": {...}} (tools/mpy/twin_run.py under MicroPython)."""
    from tools.device import bundle
    from tools.sim import simdevice

    b = simdevice.sim_bundle()
    full = bundle.load_board(board)
    spec = bundle.device_board(full, board)
    job = {"board": spec, "program": program, "sim": sim, "runs": runs, "max_ms": runs * 3_600_000}
    try:
        proc = subprocess.run([*simdevice.device_command(b, "lib"), "-X", f"heapsize={simdevice.heap_for('lib')}", str(TWIN)],
                              input=json.dumps(job), env=simdevice.mpy_env(b / "lib"), capture_output=True,
                              text=True, timeout=TWIN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"records": [], "board_heap_bytes": full["heap_bytes"],
                "done": {"runs": 0, "memory_error": None, "crash": f"the twin did not finish in {TWIN_TIMEOUT_S:g} s"}}
    records, done = [], None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("ev") == "run":
            records.append(ev["rec"])
        elif ev.get("ev") == "done":
            done = ev
    if done is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        done = {"runs": len(records), "memory_error": None, "crash": f"the twin exited {proc.returncode}: {tail[0]}"}
    return {"records": records, "done": done, "board_heap_bytes": full["heap_bytes"]}


def run_plan(p: dict) -> dict:
    """Run the twins of a plan and judge (no database; seconds at most)."""
    t0 = time.monotonic()
    boards, findings_all = [], []
    for b in p["boards"]:
        cand = _twin(b["board"], b["candidate"], b["sim"], p["runs"])
        base = _twin(b["board"], b["baseline"], b["sim"], p["runs"]) if b["baseline"] else None
        cs = core.summarize(cand["records"])
        bs = core.summarize(base["records"]) if base else None
        memory = cand["done"].get("memory_error") or cand["done"].get("crash")
        heap = (cand["done"].get("peak_heap_bytes"), base["done"].get("peak_heap_bytes") if base else None,
                cand["board_heap_bytes"])
        findings = core.compare(bs, cs, memory, heap=heap)
        for f in findings:
            f["board"] = b["board"]
        findings_all += findings
        boards.append({"board": b["board"], "readings_replayed": b["readings"],
                       "runs": {"candidate": cs["runs"], "baseline": bs["runs"] if bs else None},
                       "errors": {"candidate": sum(n["errors"] for n in cs["nodes"].values()),
                                  "baseline": sum(n["errors"] for n in bs["nodes"].values()) if bs else None},
                       "flow_heap_bytes": cand["done"].get("flow_heap_bytes"),
                       "peak_heap_bytes": cand["done"].get("peak_heap_bytes"),
                       "findings": findings})
    status, reason = core.verdict(findings_all)
    if not p["boards"]:
        status, reason = "failed", "rehearsal: no target board to rehearse on"
    return {"status": status, "reason": reason, "baseline": p["baseline"], "inputs_from": p["inputs_from"],
            "boards": boards, "processes": sum(2 if b["baseline"] else 1 for b in p["boards"]),
            "seconds": round(time.monotonic() - t0, 2)}


def broken(exc: BaseException) -> dict:
    """The result when the twins could not run at all: the deployment does not start blind."""
    return {"status": "failed", "reason": f"rehearsal could not run: {type(exc).__name__}: {exc}"[:500],
            "boards": [], "baseline": None, "inputs_from": [], "processes": 0, "seconds": 0}


def record(dep_id: str, result: dict, now: float) -> tuple[bool, dict | None]:
    """Keep a result. (passed and the deployment still waits to start, the stream update)."""
    dep = Deployment.get_by_id(dep_id)
    kept = dict(dep.rehearsal or {}, **result, finished_at=now)
    detail = {"status": result["status"], "reason": result["reason"] or None,
              "findings": [f for b in result["boards"] for f in b["findings"]][:20]}
    DeploymentEvent.create(deployment=dep_id, at=now, kind="rehearsal", device="", detail=detail)
    changes: dict = {"rehearsal": kept, "rev": _random.token_hex(8)}
    still_waiting = dep.status == "pending"
    if result["status"] == "failed" and still_waiting:
        changes.update(status="failed", phase="done", reason=result["reason"], finished_at=now)
        DeploymentEvent.create(deployment=dep_id, at=now, kind="status", device="",
                               detail={"status": "failed", "reason": result["reason"]})
        Target.update(status="skipped", reason="deployment failed its rehearsal", updated_at=now).where(
            Target.deployment == dep_id).execute()
        quarantine_version(dep.flow, dep.version, result["reason"], now, dep_id)
        webhooks.emit("deployment.failed", {"id": dep_id, "flow_id": dep.flow, "version": dep.version,
                                            "strategy": dep.strategy, "status": "failed",
                                            "reason": result["reason"]}, now)
    elif still_waiting:
        changes["phase"] = ""
    Deployment.update(**changes).where(Deployment.id == dep_id).execute()
    public = {"rehearsal": {k: v for k, v in kept.items() if k != "started_at"}}
    if "status" in changes:
        public.update(status="failed", phase="done", reason=result["reason"])
    return result["status"] == "passed" and still_waiting, {"id": dep_id, "deployment": public, "targets": []}

"""Pipelines (seed 003): an ordered list of two or more flows, each step an
execution of the flow's latest published version on the pipeline's targets.
A step that fails stops the run (`on_failure: stop`; the rest are skipped)
or is passed over (`continue`). Each run keeps a snapshot per step:
pending, running, completed, failed, skipped."""

from __future__ import annotations

import secrets as _random
import time

from cloud import schemas
from cloud.db import get_by_pk, get_or_404
from cloud.errors import Conflict, Invalid, NotFound, Problem
from cloud.models import Execution, Flow, Pipeline, PipelineRun
from cloud.secrets import SecretBox
from cloud.store import paging, webhooks
from cloud.timefmt import iso

RUN_FINISHED = ("completed", "failed", "cancelled")


def pipeline_doc(p: Pipeline, counts: dict | None = None) -> dict:
    return {"id": p.id, "name": p.name, "description": p.description or None, "steps": p.steps,
            "targets": p.targets, "use_count": p.use_count, "last_used_at": iso(p.last_used_at),
            "created_at": iso(p.created_at), "runs": counts or {"total": 0, "completed": 0, "failed": 0, "running": 0}}


def _counts(pipeline_id: str) -> dict:
    counts = {"total": 0, "completed": 0, "failed": 0, "running": 0}
    for (status,) in PipelineRun.select(PipelineRun.status).where(PipelineRun.pipeline == pipeline_id).tuples():
        counts["total"] += 1
        if status in counts:
            counts[status] += 1
    return counts


def create_pipeline(body: dict) -> dict:
    req = schemas.parse(schemas.PipelineCreate, body)
    problems = []
    steps = []
    for i, step in enumerate(req.steps):
        flow = get_by_pk(Flow, step.flow_id)
        if flow is None:
            problems.append(Problem(f"/steps/{i}/flow_id", f"no flow {step.flow_id!r}"))
            continue
        steps.append({"flow_id": flow.id, "flow_name": flow.name, "on_failure": step.on_failure})
    if problems:
        raise Invalid("unknown flows in the steps", problems)
    p = Pipeline.create(id="pl_" + _random.token_hex(6), name=req.name, description=req.description or "",
                        steps=steps, targets=req.targets.model_dump(), created_at=time.time())
    return pipeline_doc(p)


def _get(pipeline_id: str) -> Pipeline:
    return get_or_404(Pipeline, pipeline_id, "pipeline")


def get_pipeline(pipeline_id: str) -> dict:
    return pipeline_doc(_get(pipeline_id), _counts(pipeline_id))


def list_pipelines(limit: int = paging.DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of pipelines, oldest first, with their run counters."""
    got = paging.page(Pipeline.select(), "pipelines", (Pipeline.created_at, Pipeline.id), limit, cursor)
    return [pipeline_doc(p, _counts(p.id)) for p in got.rows], got.cursor


def delete_pipeline(pipeline_id: str) -> None:
    _get(pipeline_id)
    if PipelineRun.select().where((PipelineRun.pipeline == pipeline_id)
                                  & (PipelineRun.status.in_(("pending", "running")))).exists():
        raise Conflict(f"pipeline {pipeline_id} has a run in progress")
    PipelineRun.delete().where(PipelineRun.pipeline == pipeline_id).execute()
    Pipeline.delete().where(Pipeline.id == pipeline_id).execute()


def run_doc(r: PipelineRun) -> dict:
    return {"id": r.id, "pipeline_id": r.pipeline, "status": r.status, "current_step": r.current_step,
            "steps_snapshot": r.steps_snapshot, "triggered_by": r.triggered_by or None,
            "created_at": iso(r.created_at), "started_at": iso(r.started_at), "completed_at": iso(r.completed_at)}


def _start_step(run: PipelineRun, p: Pipeline, index: int, box: SecretBox, now: float) -> list:
    """Start step `index` as an execution; a step that cannot start fails."""
    from cloud.store.executions import create_execution

    snap = run.steps_snapshot
    step = snap[index]
    run.current_step = index
    step.update(status="running", started_at=iso(now))
    try:
        doc, outgoing = create_execution({"flow_id": step["flow_id"], **p.targets}, box, now,
                                         pipeline_run=run.id, triggered_by=run.triggered_by)
        step["execution_id"] = doc["id"]
        run.steps_snapshot = snap
        run.save()
        return outgoing
    except (Invalid, Conflict) as exc:  # e.g. the flow has no published version any more
        step.update(status="failed", completed_at=iso(now), error=exc.detail)
        run.steps_snapshot = snap
        return _after_step(run, p, index, box, now)


def _after_step(run: PipelineRun, p: Pipeline, index: int, box: SecretBox, now: float) -> list:
    snap = run.steps_snapshot
    failed = snap[index]["status"] == "failed"
    if failed and p.steps[index]["on_failure"] == "stop":
        for later in snap[index + 1:]:
            later["status"] = "skipped"
        return _finish(run, "failed", now)
    if index + 1 < len(snap):
        return _start_step(run, p, index + 1, box, now)
    return _finish(run, "completed", now)


def _finish(run: PipelineRun, status: str, now: float) -> list:
    run.status, run.completed_at = status, now
    run.save()
    error = next((s.get("error") for s in run.steps_snapshot if s.get("status") == "failed" and s.get("error")), None)
    webhooks.emit(f"pipeline_run.{status}", {"id": run.id, "pipeline_id": run.pipeline, "status": status,
                                             "error": error}, now)
    return []


def start_run(pipeline_id: str, box: SecretBox, triggered_by: str = "") -> tuple[dict, list]:
    p = _get(pipeline_id)
    now = time.time()
    snap = [{"step_index": i, "flow_id": s["flow_id"], "flow_name": s["flow_name"], "status": "pending",
             "execution_id": None, "started_at": None, "completed_at": None, "error": None}
            for i, s in enumerate(p.steps)]
    run = PipelineRun.create(id="plr_" + _random.token_hex(6), pipeline=p.id, status="running", steps_snapshot=snap,
                             triggered_by=triggered_by, created_at=now, started_at=now)
    p.use_count += 1
    p.last_used_at = now
    p.save()
    outgoing = _start_step(run, p, 0, box, now)
    return run_doc(run), outgoing


def on_execution_finished(exe: Execution, box: SecretBox, now: float) -> list:
    """An execution of a pipeline step ended: record it, go on or stop."""
    run = get_by_pk(PipelineRun, exe.pipeline_run)
    if run is None or run.status in RUN_FINISHED:
        return []
    p = get_by_pk(Pipeline, run.pipeline)
    snap = run.steps_snapshot
    index = next((i for i, s in enumerate(snap) if s.get("execution_id") == exe.id), None)
    if index is None or p is None:
        return []
    ok = exe.status == "completed"
    snap[index].update(status="completed" if ok else "failed", completed_at=iso(now),
                       error=None if ok else f"execution {exe.id} {exe.status}" + _cause(exe.id))
    run.steps_snapshot = snap
    return _after_step(run, p, index, box, now)


def _cause(exe_id: str) -> str:
    from cloud.store.executions import first_failure

    cause = first_failure(exe_id)
    return f": {cause}" if cause else ""


def cancel_run(pipeline_id: str, run_id: str, box: SecretBox) -> tuple[dict, list]:
    from cloud.store.executions import cancel as cancel_execution

    run = get_run_row(pipeline_id, run_id)
    if run.status in RUN_FINISHED:
        raise Conflict(f"run {run_id} is {run.status}", current_status=run.status)
    now = time.time()
    snap, outgoing = run.steps_snapshot, []
    for step in snap:
        if step["status"] == "running" and step.get("execution_id"):
            try:
                _doc, outgoing = cancel_execution(step["execution_id"], now, box, from_pipeline=True)
            except Conflict:
                pass
            step.update(status="failed", completed_at=iso(now), error="cancelled")
        elif step["status"] == "pending":
            step["status"] = "skipped"
    run.steps_snapshot = snap
    _finish(run, "cancelled", now)
    return run_doc(run), outgoing


def get_run_row(pipeline_id: str, run_id: str) -> PipelineRun:
    run = get_by_pk(PipelineRun, run_id)
    if run is None or run.pipeline != pipeline_id:
        raise NotFound(f"pipeline {pipeline_id} has no run {run_id!r}")
    return run


def get_run(pipeline_id: str, run_id: str) -> dict:
    return run_doc(get_run_row(pipeline_id, run_id))


def list_runs(pipeline_id: str, limit: int = 50, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a pipeline's runs, newest first."""
    _get(pipeline_id)
    got = paging.page(PipelineRun.select().where(PipelineRun.pipeline == pipeline_id), "pipeline_runs",
                      (PipelineRun.created_at, PipelineRun.id), limit, cursor, descending=True)
    return [run_doc(r) for r in got.rows], got.cursor

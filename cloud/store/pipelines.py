"""Pipelines (seed 003): an ordered list of two or more flows, each step an
execution of the flow's latest published version on the pipeline's targets.
A step that fails stops the run (`on_failure: stop`; the rest are skipped)
or is passed over (`continue`). Each run keeps a snapshot per step:
pending, running, completed, failed, skipped; a `manual` step waits on a
person's advance. What happens is decided by cloud.engine.pipeline; this
is its shell (it starts and cancels the step executions). The driver tells
it when a step's execution ends: cloud.store.executions knows nothing of
pipelines."""

from __future__ import annotations

import secrets as _random

from cloud import schemas
from cloud.db import get_by_pk, get_for_update, get_or_404
from cloud.engine import pipeline as core
from cloud.errors import Conflict, Invalid, NotFound, Problem
from cloud.models import Flow, Pipeline, PipelineRun, database
from cloud.secrets import SecretBox
from cloud.store import paging, webhooks
from cloud.store.executions import cancel as cancel_execution, create_execution, first_failure
from cloud.timefmt import iso

RUN_STATUSES = core.RUN_STATUSES
RUN_FINISHED = tuple(s for s in core.RUN_STATUSES if s in core.RUN_FINISHED)


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


def _resolved_steps(steps: list[schemas.PipelineStep]) -> list[dict]:
    """The steps as stored, each with its flow's name; Invalid names every unknown flow."""
    problems = []
    resolved = []
    for i, step_ in enumerate(steps):
        flow = get_by_pk(Flow, step_.flow_id)
        if flow is None:
            problems.append(Problem(f"/steps/{i}/flow_id", f"no flow {step_.flow_id!r}"))
            continue
        resolved.append({"flow_id": flow.id, "flow_name": flow.name, "on_failure": step_.on_failure,
                         "manual": step_.manual})
    if problems:
        raise Invalid("unknown flows in the steps", problems)
    return resolved


def create_pipeline(body: dict, now: float) -> dict:
    req = schemas.parse(schemas.PipelineCreate, body)
    p = Pipeline.create(id="pl_" + _random.token_hex(6), name=req.name, description=req.description or "",
                        steps=_resolved_steps(req.steps), targets=req.targets.model_dump(), created_at=now)
    return pipeline_doc(p)


def _get(pipeline_id: str, lock: bool = False) -> Pipeline:
    """The pipeline or NotFound; `lock`: FOR UPDATE (an edit and a run's start take turns)."""
    if not lock:
        return get_or_404(Pipeline, pipeline_id, "pipeline")
    p = get_for_update(Pipeline, pipeline_id)
    if p is None:
        raise NotFound(f"no pipeline {pipeline_id!r}")
    return p


def _check_idle(pipeline_id: str) -> None:
    """Conflict while a run of the pipeline is pending or running: it follows the steps as they are."""
    if PipelineRun.select().where((PipelineRun.pipeline == pipeline_id)
                                  & (PipelineRun.status.in_(("pending", "running")))).exists():
        raise Conflict(f"pipeline {pipeline_id} has a run in progress")


def update_pipeline(pipeline_id: str, body: dict) -> dict:
    """Change what the body gives (a field given as null is left alone but
    the description, which null clears); refused while a run is in progress."""
    req = schemas.parse(schemas.PipelinePatch, body)
    p = _get(pipeline_id, lock=True)
    _check_idle(pipeline_id)
    if req.name is not None:
        p.name = req.name
    if "description" in req.model_fields_set:
        p.description = req.description or ""
    if req.steps is not None:
        p.steps = _resolved_steps(req.steps)
    if req.targets is not None:
        p.targets = req.targets.model_dump()
    p.save()
    return pipeline_doc(p, _counts(pipeline_id))


def get_pipeline(pipeline_id: str) -> dict:
    return pipeline_doc(_get(pipeline_id), _counts(pipeline_id))


def list_pipelines(limit: int = paging.DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of pipelines, oldest first, with their run counters."""
    got = paging.page(Pipeline.select(), "pipelines", (Pipeline.created_at, Pipeline.id), limit, cursor)
    return [pipeline_doc(p, _counts(p.id)) for p in got.rows], got.cursor


def delete_pipeline(pipeline_id: str) -> None:
    _get(pipeline_id)
    _check_idle(pipeline_id)
    PipelineRun.delete().where(PipelineRun.pipeline == pipeline_id).execute()
    Pipeline.delete().where(Pipeline.id == pipeline_id).execute()


def run_doc(r: PipelineRun) -> dict:
    return {"id": r.id, "pipeline_id": r.pipeline, "status": r.status, "current_step": r.current_step,
            "steps_snapshot": r.steps_snapshot, "triggered_by": r.triggered_by or None,
            "created_at": iso(r.created_at), "started_at": iso(r.started_at), "completed_at": iso(r.completed_at)}


def step(run: PipelineRun, events: list, now: float, box: SecretBox) -> list[tuple[str, list[dict]]]:
    """Decide on `events` for `run` (cloud.engine.pipeline) at `now`, carry
    the actions out (start or cancel the step executions) and record them;
    returns the commands to publish. Raises IllegalTransition (nothing
    recorded) for a command the status does not allow."""
    p = get_by_pk(Pipeline, run.pipeline)
    if p is None:
        raise NotFound(f"pipeline {run.pipeline} is gone")
    state = core.Run(run.id, run.steps_snapshot, p.steps, run.status, run.current_step, run.started_at,
                     run.completed_at)
    outgoing: list = []
    while events:
        actions = core.decide(state, events, now)
        core.apply(state, actions)
        events = []
        for action in actions:
            if isinstance(action, core.StartStep):
                step_ = state.steps[action.index]
                try:
                    with database.atomic():  # a savepoint: a refused execution leaves no row behind
                        doc, out = create_execution({"flow_id": step_["flow_id"], **p.targets}, box, now,
                                                    pipeline_run=run.id, triggered_by=run.triggered_by)
                except (Invalid, Conflict) as exc:  # e.g. the flow has no published version any more
                    events.append(core.StepStartFailed(action.index, exc.detail))
                    continue
                step_["execution_id"] = doc["id"]
                outgoing += out
            elif isinstance(action, core.CancelExecution):
                try:
                    _doc, result = cancel_execution(action.execution_id, now, box)
                except Conflict:  # it ended meanwhile
                    continue
                outgoing += result.outgoing  # its end is this run's doing: nothing to tell
            elif isinstance(action, core.Finished):
                error = next((s.get("error") for s in state.steps if s.get("status") == "failed" and s.get("error")),
                             None)
                webhooks.emit(f"pipeline_run.{action.status}", {"id": run.id, "pipeline_id": run.pipeline,
                                                                "status": action.status, "error": error}, now)
    run.status, run.current_step = state.status, state.current_step
    run.started_at, run.completed_at = state.started_at, state.completed_at
    run.steps_snapshot = [{k: (iso(v) if k.endswith("_at") and isinstance(v, float) else v) for k, v in s.items()}
                          for s in state.steps]
    run.save()
    return outgoing


def start_run(pipeline_id: str, box: SecretBox, now: float, triggered_by: str = "") -> tuple[dict, list]:
    p = _get(pipeline_id, lock=True)  # an edit waits until the run exists, then refuses
    snap = [{"step_index": i, "flow_id": s["flow_id"], "flow_name": s["flow_name"], "manual": bool(s.get("manual")),
             "status": "pending", "execution_id": None, "execution_status": None, "waiting": False,
             "started_at": None, "completed_at": None, "error": None}
            for i, s in enumerate(p.steps)]
    run = PipelineRun.create(id="plr_" + _random.token_hex(6), pipeline=p.id, status="pending", steps_snapshot=snap,
                             triggered_by=triggered_by, created_at=now)
    p.use_count += 1
    p.last_used_at = now
    p.save()
    outgoing = step(run, [core.Start()], now, box)
    return run_doc(run), outgoing


def on_execution_finished(run_id: str, exe_id: str, status: str, now: float, box: SecretBox) -> list:
    """The execution of a pipeline step ended (the driver says so): the run
    goes on, stops, or waits on a person."""
    run = get_for_update(PipelineRun, run_id)
    if run is None or run.status in core.RUN_FINISHED:
        return []
    return step(run, [core.ExecutionEnded(exe_id, status, first_failure(exe_id) or "")], now, box)


def advance_run(pipeline_id: str | None, run_id: str, success: bool, now: float, box: SecretBox) -> tuple[dict, list]:
    """End the run's current step by hand ("Step Done" / "Step Failed")."""
    run = get_run_row(pipeline_id, run_id, lock=True)
    outgoing = step(run, [core.Advance(success)], now, box)
    return run_doc(run), outgoing


def cancel_run(pipeline_id: str | None, run_id: str, now: float, box: SecretBox) -> tuple[dict, list]:
    run = get_run_row(pipeline_id, run_id, lock=True)
    outgoing = step(run, [core.Cancel()], now, box)
    return run_doc(run), outgoing


def get_run_row(pipeline_id: str | None, run_id: str, lock: bool = False) -> PipelineRun:
    """A run of `pipeline_id`, or of any pipeline when None (seed 003 names
    runs alone); `lock`: FOR UPDATE, for a change (replicas: an advance or a
    cancel here and the step the driving replica takes next take turns)."""
    run = get_for_update(PipelineRun, run_id) if lock else get_by_pk(PipelineRun, run_id)
    if run is None or (pipeline_id is not None and run.pipeline != pipeline_id):
        raise NotFound(f"pipeline {pipeline_id} has no run {run_id!r}" if pipeline_id else f"no pipeline run {run_id!r}")
    return run


def get_run(pipeline_id: str, run_id: str) -> dict:
    return run_doc(get_run_row(pipeline_id, run_id))


def list_runs(pipeline_id: str | None, limit: int = 50, cursor: str | None = None,
              status: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a pipeline's runs (of every pipeline when None), newest first."""
    query = PipelineRun.select()
    if pipeline_id is not None:
        _get(pipeline_id)
        query = query.where(PipelineRun.pipeline == pipeline_id)
    if status:
        query = query.where(PipelineRun.status == status)
    got = paging.page(query, "pipeline_runs", (PipelineRun.created_at, PipelineRun.id), limit, cursor,
                      descending=True)
    return [run_doc(r) for r in got.rows], got.cursor

"""Executions: one flow version run once, on demand, on some devices, with
overrides (seeds 000 and 004), recorded against that version.

Each device gets a signed `exec` command carrying the program inline (its
envelope signed with the command's fresh cseq: run once, never stored in a
slot, and a recording of it is refused as a replay); it acks `received`, then `done`
with the run's status and id, and the run record itself arrives on
ff/<dev>/runs with `exec` set (cloud.store.runs). Status: pending -> running
-> completed | failed | cancelled | timed_out.

What follows from acks, stored records, a cancel and the passing of time is
decided by the pure core (cloud.engine.execution); this is its shell: it
loads the state, applies the actions and builds the commands. An execution
that ends is reported in `Result.finished`: the driver tells the pipeline
it is a step of (this module knows nothing of pipelines).
"""

from __future__ import annotations

import json
import secrets as _random
from typing import NamedTuple

from shared_schema.commands import EXECUTION_PREFIX, cancel_message, command_id, exec_message
from shared_schema.envelope import MAX_COMMAND_BYTES, needs_chunks
from shared_schema.overrides import normalized, override_problems

from cloud import schemas
from peewee import fn

from cloud.db import chunks, get_for_update, get_or_404, insert_rows, update_in, update_rows
from cloud.engine import execution as core
from cloud.engine.settings import parse_duration
from cloud.errors import Conflict, Invalid, NotFound, Problem
from cloud.models import Command, Device, Execution, ExecTarget, Flow, FlowVersion, RunRecord
from cloud.secrets import SecretBox
from cloud.store.deployments import (
    EMBED_TARGETS_MAX, check_types, compile_for, published_version, resolve_targets,
)
from cloud.store import paging, webhooks
from cloud.store.rollout import take_seqs
from cloud.store.runs import nodes_of
from cloud.timefmt import iso

FINISHED = tuple(s for s in core.STATUSES if s in core.FINISHED)
TARGET_STATUSES = core.TARGET_STATUSES
LOG_LEVELS = ("debug", "info", "warning", "error")


class Ended(NamedTuple):
    execution: str
    pipeline_run: str | None
    status: str


class Result(NamedTuple):
    outgoing: list[tuple[str, list[dict]]]  # (device_id, messages) to publish
    finished: list[Ended]  # executions that ended


def _checked_overrides(fv: FlowVersion, overrides: dict, boards: list[str]) -> dict:
    """The overrides as the devices take them; Invalid, pointing into
    `/overrides`, when the flow would not run with them on a target board
    (rather than every device refusing the run after the round trip)."""
    problems: dict[tuple[str, str], list[str]] = {}
    for board in boards:
        for p in override_problems(fv.body, overrides, board):
            problems.setdefault((p.pointer, p.message), []).append(board)
    if problems:
        raise Invalid(f"the overrides do not fit version {fv.version} of flow {fv.flow}",
                      [Problem(ptr, msg, tuple(on)) for (ptr, msg), on in problems.items()])
    return normalized(fv.body, overrides, boards[0])


def _every_device(include_offline: bool):
    """`"all": true`: the connected devices (an execution is a run now, and a device
    that is not there would only time out), or every device with include_offline."""
    query = Device.select().order_by(Device.id)
    return query if include_offline else query.where(Device.online == True)  # noqa: E712 (peewee)


def create_execution(body: dict, box: SecretBox, now: float, retry_of: str | None = None,
                     pipeline_run: str | None = None,
                     device_ids: list[str] | None = None,
                     triggered_by: str = "") -> tuple[dict, list[tuple[str, list[dict]]]]:
    """Record an execution and its commands; returns (document, commands to send).
    `triggered_by`: who asked (user:<email> or key:<name>).
    `device_ids` (a retry's or replay's devices, any number of them) take the
    place of the body's targets, which a request may name only MAX_TARGETS of."""
    req = schemas.parse(schemas.ExecutionCreate, body)
    try:
        timeout = parse_duration(req.timeout)
    except ValueError as exc:
        raise Invalid("bad timeout", [Problem("/timeout", str(exc))]) from None
    # an execution may run a quarantined version it names (to reproduce the
    # failure on one device); "latest" skips quarantined ones as deployments do
    fv = published_version(req.flow_id, req.version, force=True)
    if device_ids is not None:
        found: dict[str, Device] = {}
        for chunk in chunks(device_ids):
            found.update((d.id, d) for d in Device.select().where(Device.id.in_(chunk)))
        devices = [found[d] for d in device_ids if d in found]  # a device deleted since is left out
        if not devices:
            raise Conflict(f"the devices of execution {retry_of} are gone")
    else:
        devices = list(_every_device(req.include_offline)) if req.all else resolve_targets(req)
    if not devices:
        raise Invalid("no devices", [Problem("/all", "no device is connected (include_offline: true for every device)"
                                             if req.all and not req.include_offline else "there are no devices")])
    check_types(devices, fv.types, req)
    programs = compile_for(fv, devices)
    for board, program in programs.items():
        if needs_chunks(program):
            raise Invalid("too big to run inline", [Problem("/flow_id", f"the program for {board} is {program.size} "
                                                                        "bytes: too big for an inline run; deploy it")])
    overrides = _checked_overrides(fv, req.overrides.model_dump(), sorted(programs))
    exe = Execution.create(id=EXECUTION_PREFIX + _random.token_hex(6), flow=fv.flow, version=fv.version,
                           overrides=overrides, selector=body, timeout=timeout,
                           retry_of=retry_of, pipeline_run=pipeline_run, triggered_by=triggered_by, created_at=now)
    outgoing, rows, targets = [], [], []
    taken = take_seqs({dev.id: 1 for dev in devices})
    for i, dev in enumerate(devices):
        cmd_id = command_id(exe.id, dev.id, "exec")
        cseq, sealed = taken[dev.id]
        key = box.open(sealed)
        messages = [exec_message(cmd_id, exe.id, overrides, programs[dev.board], dev.id, key, cseq)]
        size = len(json.dumps(messages[0], separators=(",", ":")))
        if size > MAX_COMMAND_BYTES:  # the broker would cut the cloud off; a device would refuse it
            raise Invalid("too big to send", [Problem("/overrides", (
                f"the exec command for {dev.id} would be {size} bytes, over the {MAX_COMMAND_BYTES} "
                "a command may have: fewer or shorter overrides, or deploy the flow"))])
        rows.append({"id": cmd_id, "deployment": exe.id, "device": dev.id, "step": "exec", "payload": messages,
                     "created_at": now})
        targets.append({"execution": exe.id, "device": dev.id, "position": i})
        outgoing.append((dev.id, messages))
    insert_rows(ExecTarget, targets)
    insert_rows(Command, rows)
    return get_execution(exe.id), outgoing


def step(exe_id: str, events: list, now: float, box: SecretBox) -> Result:
    """Decide on `events` (cloud.engine.execution's ExecAck, RecordStored,
    Cancel) at `now` and record the outcome. Raises IllegalTransition
    (nothing recorded) for a cancel the status does not allow."""
    # Locked: a cancel run by one replica and the step of the replica that
    # drives the execution (cloud.store.leases) take turns.
    exe = get_for_update(Execution, exe_id)
    if exe is None:
        raise NotFound(f"no execution {exe_id!r}")
    if exe.status in core.FINISHED and not any(isinstance(e, core.Cancel) for e in events):
        return Result([], [])
    cancelling = any(isinstance(e, core.Cancel) for e in events)
    named = list({e.device_id for e in events if not isinstance(e, core.Cancel)})
    rows = _load_targets(exe_id, named, cancelling, now - exe.created_at >= exe.timeout)
    state = core.Execution(exe.id, exe.created_at, exe.timeout, exe.status, exe.started_at, exe.finished_at,
                           _counts(exe_id))
    targets = [core.Target(t.device, t.status, t.run, t.outcome, frozenset(runs), t.reason, t.finished_at)
               for t, runs in rows.values()]
    actions = core.decide(state, targets, events, now)

    changed: dict[str, dict] = {}
    others, cancels, ended = None, [], []
    for action in actions:
        if isinstance(action, core.UpdateTarget):
            changed.setdefault(action.device_id, {}).update(action.fields)
        elif isinstance(action, core.UpdateExecution):
            for key, value in action.fields.items():
                setattr(exe, key, value)
        elif isinstance(action, core.UpdateOtherOpen):
            others = action.fields
        elif isinstance(action, core.SendCancel):
            cancels.append(action.device_id)
        elif isinstance(action, core.Finished):
            ended.append(Ended(exe.id, exe.pipeline_run, action.status))
    columns = ("status", "run", "outcome", "reason", "finished_at")
    for device_id, fields in changed.items():
        row = rows[device_id][0]
        for key, value in fields.items():
            setattr(row, key, value)
    # The device has answered for good (the record may still be on its way):
    # its command needs no re-sending.
    answered = list({command_id(exe_id, e.device_id, "exec") for e in events
                     if isinstance(e, core.ExecAck) and e.state in ("done", "rejected", "failed")})
    update_rows(ExecTarget, columns, [(*(getattr(rows[d][0], c) for c in columns), rows[d][0].id) for d in changed])
    if others is not None:  # the open targets left are exactly those not passed to decide (rule 5, 6)
        ExecTarget.update(**others).where((ExecTarget.execution == exe_id)
                                          & ExecTarget.status.in_(core.OPEN)).execute()
    if ended:  # nothing of it needs sending again
        Command.update(done=True).where(Command.deployment == exe_id).execute()
    else:
        update_in(Command, {"done": True}, answered)
    exe.save()
    for end in ended:
        webhooks.emit(f"execution.{end.status}", {"id": exe.id, "flow_id": exe.flow, "version": exe.version,
                                                  "status": end.status, "targets": sum(state.counts.values()),
                                                  "reason": first_failure(exe.id)}, now)
    return Result(_cancel_commands(exe_id, cancels, box), ended)


def first_failure(exe_id: str) -> str | None:
    """'device: reason' of the execution's first target that failed or timed
    out (its reason names the failing node and its error), else None."""
    t = (ExecTarget.select(ExecTarget.device, ExecTarget.status, ExecTarget.reason)
         .where((ExecTarget.execution == exe_id) & ExecTarget.status.in_(("failed", "timed_out")))
         .order_by(ExecTarget.position).first())
    if t is None:
        return None
    return f"{t.device}: {t.reason or t.status}"


def _counts(exe_id: str) -> dict[str, int]:
    return dict(ExecTarget.select(ExecTarget.status, fn.COUNT(ExecTarget.id))
                .where(ExecTarget.execution == exe_id).group_by(ExecTarget.status).tuples())


def _load_targets(exe_id: str, devices: list[str], every_open: bool,
                  timed_out: bool) -> dict[str, tuple[ExecTarget, set[int]]]:
    """The targets `decide` needs (cloud.engine.execution, "Scale"): those
    named; every open one for a cancel; past the timeout, those awaiting
    their record (rule 6 settles them apart from the rest); each with the
    run numbers of this execution's records stored from it."""
    found: dict[str, ExecTarget] = {}
    for chunk in chunks(devices):
        found.update((t.device, t) for t in ExecTarget.select().where(
            (ExecTarget.execution == exe_id) & ExecTarget.device.in_(chunk)))
    wanted = (ExecTarget.status.in_(core.OPEN) if every_open
              else (ExecTarget.status == "running") & (ExecTarget.outcome != "") if timed_out else None)
    if wanted is not None:
        found.update((t.device, t) for t in ExecTarget.select().where((ExecTarget.execution == exe_id) & wanted))
    runs: dict[str, set[int]] = {d: set() for d in found}
    for chunk in chunks(list(found)):
        for device_id, run in (RunRecord.select(RunRecord.device, RunRecord.run)
                               .where((RunRecord.exec == exe_id) & RunRecord.device.in_(chunk)).tuples()):
            runs[device_id].add(run)
    return {d: (t, runs[d]) for d, t in found.items()}


def _cancel_commands(exe_id: str, devices: list[str], box: SecretBox) -> list[tuple[str, list[dict]]]:
    taken = take_seqs({d: 1 for d in devices})
    out = [(d, [cancel_message(command_id(exe_id, d, "cancel"), command_id(exe_id, d, "exec"), d,
                               box.open(taken[d][1]), taken[d][0])]) for d in devices if d in taken]
    return out


def tick(now: float, box: SecretBox, only: set[str] | None = None) -> list[tuple[str, Result]]:
    """Every open execution decided on at `now`: records stored since (by
    this process or another replica) settle their targets, and timeouts
    end what is left (nothing stays running forever). `only`: the
    executions this replica drives (cloud.store.leases); None, all."""
    results = []
    for exe in Execution.select().where(Execution.status.in_(core.OPEN)):
        if only is not None and exe.id not in only:
            continue
        stored = (ExecTarget.select(ExecTarget.device, ExecTarget.run)
                  .join(RunRecord, on=((RunRecord.exec == ExecTarget.execution) & (RunRecord.device == ExecTarget.device)
                                       & (RunRecord.run == ExecTarget.run)))
                  .where((ExecTarget.execution == exe.id) & (ExecTarget.status == "running")
                         & (ExecTarget.outcome != "")).tuples())
        events = [core.RecordStored(device_id, run) for device_id, run in stored]
        if events or now - exe.created_at >= exe.timeout:
            results.append((exe.id, step(exe.id, events, now, box)))
    return results


def cancel(exe_id: str, now: float, box: SecretBox) -> tuple[dict, Result]:
    result = step(exe_id, [core.Cancel()], now, box)
    return get_execution(exe_id), result


def again(exe_id: str, box: SecretBox, only_failed: bool, now: float,
          triggered_by: str = "") -> tuple[dict, list[tuple[str, list[dict]]]]:
    """retry (the devices that did not complete) or replay (all of them):
    a new execution of the same version with the same overrides."""
    exe = _get(exe_id)
    targets = list(ExecTarget.select().where(ExecTarget.execution == exe_id).order_by(ExecTarget.position))
    devices = [t.device for t in targets if not only_failed or t.status in ("failed", "timed_out", "cancelled")]
    if not devices:
        raise Conflict(f"execution {exe_id} has nothing to retry: every device completed")
    body = {"flow_id": exe.flow, "version": exe.version, "overrides": exe.overrides, "timeout": exe.timeout}
    return create_execution(body, box, now, retry_of=exe_id, device_ids=devices, triggered_by=triggered_by)


def _get(exe_id: str) -> Execution:
    return get_or_404(Execution, exe_id, "execution")


def _runs(exe_id: str, level: str | None, devices: list[str]) -> dict[str, dict]:
    """The run record of each of `devices` for this execution, with its node log.
    A run that went through a `delay` arrives as several records (the part
    after each delay runs later, as its own run): they are one record here,
    nodes and logs in run order, failed if any part failed, `run` the last."""
    floor = LOG_LEVELS.index(level) if level in LOG_LEVELS else 0
    out: dict[str, dict] = {}
    for chunk in chunks(devices):
        for r in (RunRecord.select().where((RunRecord.exec == exe_id) & (RunRecord.device.in_(chunk)))
                  .order_by(RunRecord.device, RunRecord.run)):
            logs = [entry for entry in (r.logs or []) if isinstance(entry, list) and entry
                    and entry[0] in LOG_LEVELS and LOG_LEVELS.index(entry[0]) >= floor]
            rec = out.get(r.device)
            if rec is None:
                out[r.device] = {"run": r.run, "status": r.status, "err": r.err, "us": r.us, "trigger": r.trigger,
                                 "nodes": nodes_of(r.id), "logs": logs}
                continue
            rec["run"] = r.run
            rec["us"] = (rec["us"] or 0) + (r.us or 0)
            rec["nodes"] += nodes_of(r.id)
            rec["logs"] += logs
            if rec["status"] == "completed":
                rec["status"] = r.status
                rec["err"] = r.err
    return out


def _target_docs(exe_id: str, targets: list[ExecTarget], level: str | None) -> list[dict]:
    runs = _runs(exe_id, level, [t.device for t in targets])
    return [{"device_id": t.device, "status": t.status, "run": t.run, "reason": t.reason or None,
             "finished_at": iso(t.finished_at), "record": runs.get(t.device)} for t in targets]


def execution_doc(exe: Execution, counts: dict | None = None, targets: list[ExecTarget] | None = None,
                  level: str | None = None) -> dict:
    doc = {"id": exe.id, "flow_id": exe.flow, "version": exe.version, "status": exe.status,
           "pipeline_run": exe.pipeline_run, "triggered_by": exe.triggered_by or None,
           "overrides": exe.overrides, "timeout": exe.timeout, "retry_of": exe.retry_of,
           "created_at": iso(exe.created_at), "started_at": iso(exe.started_at), "finished_at": iso(exe.finished_at),
           "targets_url": f"/api/v1/executions/{exe.id}/targets"}
    if counts is not None:
        doc["total_targets"], doc["counts"] = sum(counts.values()), counts
    if targets is not None:
        doc["targets"] = _target_docs(exe.id, targets, level)
    return doc


def get_execution(exe_id: str, level: str | None = None) -> dict:
    """The document with counts per target status; the targets, each with
    its run record, embedded when there are at most EMBED_TARGETS_MAX."""
    exe = _get(exe_id)
    counts = dict.fromkeys(TARGET_STATUSES, 0)
    for status, n in (ExecTarget.select(ExecTarget.status, fn.COUNT(ExecTarget.id))
                      .where(ExecTarget.execution == exe_id).group_by(ExecTarget.status).tuples()):
        counts[status] = n
    targets = None
    if sum(counts.values()) <= EMBED_TARGETS_MAX:
        targets = list(ExecTarget.select().where(ExecTarget.execution == exe_id).order_by(ExecTarget.position))
    return execution_doc(exe, counts, targets, level)


def list_targets(exe_id: str, level: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                 cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of an execution's targets in their order, with their run records."""
    _get(exe_id)
    got = paging.page(ExecTarget.select().where(ExecTarget.execution == exe_id), "exec_targets",
                      (ExecTarget.position,), limit, cursor)
    return _target_docs(exe_id, got.rows, level), got.cursor


def list_executions(flow_id: str | None = None, status: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                    cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of executions, newest first."""
    query = Execution.select()
    if flow_id:
        query = query.where(Execution.flow == flow_id)
    if status:
        query = query.where(Execution.status == status)
    got = paging.page(query, "executions", (Execution.created_at, Execution.id), limit, cursor, descending=True)
    return [execution_doc(e) for e in got.rows], got.cursor


def live_update(exe_id: str, devices: list[str], level: str | None = None) -> dict:
    """What the execution stream (cloud.views.streams) sends after a change:
    the execution with its counts, and the documents of `devices`' targets,
    run records and log lines included, in target order."""
    exe = _get(exe_id)
    counts = dict.fromkeys(TARGET_STATUSES, 0)
    counts.update(_counts(exe_id))
    rows: list[ExecTarget] = []
    for chunk in chunks(devices):
        rows.extend(ExecTarget.select().where((ExecTarget.execution == exe_id) & ExecTarget.device.in_(chunk)))
    rows.sort(key=lambda t: t.position)
    return {"execution": execution_doc(exe, counts), "targets": _target_docs(exe_id, rows, level)}

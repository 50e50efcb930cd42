"""The rollout engine's storage side: load a deployment, let `decide` rule,
record every action, and turn each Send into the signed command(s) kept in
the outbox (`Command`) until the device answers.

A command's id is `<deployment>.<device>.<step>` and its payload is built
once: sending it again (after a restart, or when the device comes back
online) sends the very same bytes, with the same sequence number, and the
device acks the repeat without applying it again.
"""

from __future__ import annotations

from shared_schema.compiler import CompiledProgram
from shared_schema.envelope import chunked, make_envelope, needs_chunks

from cloud.engine.decide import decide
from cloud.engine.state import (
    Ack, Deployment as DepState, Send, Target as TargetState, UpdateDeployment, UpdateTarget, command_id,
)
from cloud.errors import NotFound
from cloud.models import Command, Deployment, DeploymentEvent, Device, Program, Target
from cloud.secrets import SecretBox

_DEP_FIELDS = ("status", "phase", "batch", "phase_since", "started_at", "finished_at", "reason")
_TARGET_FIELDS = ("batch", "status", "step", "ack", "sent_at", "applied", "reason")
# The ack states after which a command needs no re-sending.
_FINAL = {
    "deploy": {"healthy", "failed", "rejected", "rolled_back"},
    "activate": {"healthy", "failed", "rejected", "rolled_back"},
    "stage": {"staged", "failed", "rejected"},
    "rollback": {"rolled_back", "rejected"},
    "cancel": {"received", "rejected", "done"},
}
ACTIVE = ("running", "paused")


def _state(dep: Deployment, targets: list[Target]) -> tuple[DepState, list[TargetState]]:
    ds = DepState(id=dep.id, strategy=dep.strategy, settings=dep.settings,
                  **{k: getattr(dep, k) for k in _DEP_FIELDS})
    ts = [TargetState(device_id=t.device, **{k: getattr(t, k) for k in _TARGET_FIELDS}) for t in targets]
    return ds, ts


def step(dep_id: str, events: list, now: float, box: SecretBox) -> list[tuple[str, list[dict]]]:
    """Decide on `events` at `now` and record the outcome; returns the
    commands to publish as (device_id, messages). Raises IllegalTransition
    (nothing recorded) for a user command the status does not allow."""
    dep = Deployment.get_or_none(Deployment.id == dep_id)
    if dep is None:
        raise NotFound(f"no deployment {dep_id!r}")
    targets = list(Target.select().where(Target.deployment == dep_id).order_by(Target.position))
    ds, ts = _state(dep, targets)
    actions = decide(ds, ts, events, now)
    by_device = {t.device: t for t in targets}
    log = [_event_row(dep_id, now, e) for e in events if not isinstance(e, Ack)]
    outgoing: list[tuple[str, list[dict]]] = []
    dep_changes: dict = {}
    target_changes: dict[str, dict] = {}
    for action in actions:
        if isinstance(action, UpdateDeployment):
            dep_changes.update(action.fields)
            if "status" in action.fields:
                log.append({"deployment": dep_id, "at": now, "kind": "status", "device": "",
                            "detail": {"status": action.fields["status"], "reason": action.fields.get("reason")}})
        elif isinstance(action, UpdateTarget):
            row = by_device[action.device_id]
            for key, value in action.fields.items():
                setattr(row, key, value)
            target_changes.setdefault(action.device_id, {}).update(action.fields, updated_at=now)
            if "status" in action.fields:
                log.append({"deployment": dep_id, "at": now, "kind": "target", "device": action.device_id,
                            "detail": {"status": action.fields["status"], "reason": row.reason or None}})
        elif isinstance(action, Send):
            row = by_device[action.device_id]
            messages = _command(dep, row, action.step, now, box)
            target_changes.setdefault(action.device_id, {})["seq"] = row.seq
            outgoing.append((action.device_id, messages))
            log.append({"deployment": dep_id, "at": now, "kind": "send", "device": action.device_id,
                        "detail": {"step": action.step, "id": messages[0]["id"]}})
    if dep_changes:
        Deployment.update(**dep_changes).where(Deployment.id == dep_id).execute()
    for device_id, fields in target_changes.items():
        Target.update(**fields).where(Target.id == by_device[device_id].id).execute()
    for ack in (e for e in events if isinstance(e, Ack)):
        if ack.state in _FINAL.get(ack.step, ()) or (ack.step in ("deploy", "activate") and ack.state == "applied"
                                                     and not dep.settings["health_check"]):
            Command.update(done=True).where(Command.id == command_id(dep_id, ack.device_id, ack.step)).execute()
    if log:
        DeploymentEvent.insert_many(log).execute()
    return outgoing


def _event_row(dep_id: str, now: float, event) -> dict:
    return {"deployment": dep_id, "at": now, "kind": type(event).__name__.lower(), "device": "",
            "detail": {"reason": getattr(event, "reason", None)}}


def _health(settings: dict) -> dict:
    if not settings["health_check"]:
        return {"runs": 0, "seconds": 0, "max_error_rate": 1.0}
    rule = dict(settings["health"])
    rule["seconds"] = int(rule["seconds"]) if float(rule["seconds"]).is_integer() else rule["seconds"]
    return rule


def _program(dep_id: str, board: str) -> CompiledProgram:
    row = Program.get((Program.deployment == dep_id) & (Program.board == board))
    data = row.data.encode("ascii")
    dep = Deployment.get_by_id(dep_id)
    return CompiledProgram(data, row.sha256, row.size, dep.flow, dep.version, board)


def _command(dep: Deployment, target: Target, step: str, now: float, box: SecretBox) -> list[dict]:
    cmd_id = command_id(dep.id, target.device, step)
    existing = Command.get_or_none(Command.id == cmd_id)
    if existing is not None:  # decided before (a restart, a repeat): the same bytes again
        return existing.payload
    if step in ("deploy", "stage"):
        device = Device.get_by_id(target.device)
        device.seq += 1
        device.save()
        target.seq = device.seq
        program = _program(dep.id, target.board)
        key = box.open(device.key_sealed)
        if needs_chunks(program):
            envelope, chunks = chunked(program, target.device, key, device.seq, cmd_id)
        else:
            envelope, chunks = make_envelope(program, target.device, key, device.seq), []
        head = {"id": cmd_id, "op": step, **envelope}
        if step == "deploy":
            head["health"] = _health(dep.settings)
        messages = [head, *chunks]
    elif step == "activate":
        messages = [{"id": cmd_id, "op": "activate", "seq": target.seq, "health": _health(dep.settings)}]
    elif step == "rollback":
        messages = [{"id": cmd_id, "op": "rollback", "reason": target.reason or "rolled back by the cloud"}]
        _supersede(dep.id, target.device)
    else:  # cancel: whatever this deployment still has in flight on the device
        open_cmds = [c.id for c in Command.select(Command.id).where(
            (Command.deployment == dep.id) & (Command.device == target.device) & (Command.done == False))]  # noqa: E712
        messages = [{"id": cmd_id, "op": "cancel", "target": open_cmds[-1] if open_cmds else None}]
        _supersede(dep.id, target.device)
    Command.create(id=cmd_id, deployment=dep.id, device=target.device, step=step, payload=messages, created_at=now)
    return messages


def _supersede(dep_id: str, device_id: str) -> None:
    """A rollback or cancel replaces whatever was still to be delivered."""
    Command.update(done=True).where((Command.deployment == dep_id) & (Command.device == device_id)
                                    & (Command.step.in_(("deploy", "stage", "activate")))).execute()


def pending_commands(device_id: str | None = None) -> list[tuple[str, list[dict]]]:
    """Commands not yet answered, oldest first (for one device or all)."""
    query = Command.select().where(Command.done == False).order_by(Command.created_at, Command.id)  # noqa: E712
    if device_id is not None:
        query = query.where(Command.device == device_id)
    return [(c.device, c.payload) for c in query]


def mark_sent(ids: list[str], now: float) -> None:
    if ids:
        Command.update(sent_count=Command.sent_count + 1, last_sent_at=now).where(Command.id.in_(ids)).execute()


def active_deployments() -> list[str]:
    """Deployments the driver must keep deciding on: running or paused, or
    finished with targets still on trial (their timeouts still apply)."""
    ids = {d.id for d in Deployment.select(Deployment.id).where(Deployment.status.in_(ACTIVE))}
    ids |= {t.deployment for t in Target.select(Target.deployment).where(Target.status == "deploying").distinct()}
    return sorted(ids)

"""The rollout engine's storage side: load a deployment, let `decide` rule,
record every action, and turn each Send into the signed command(s) kept in
the outbox (`Command`) until the device answers.

A command's id is `<deployment>.<device>.<step>` (shared_schema.commands,
which also builds its messages) and its payload is built
once: sending it again (after a restart, or when the device comes back
online) sends the very same bytes, with the same sequence number, and the
device acks the repeat without applying it again.
"""

from __future__ import annotations

import secrets as _random
import time
import weakref
from collections import OrderedDict
from typing import NamedTuple

from shared_schema.compiler import CompiledProgram
from shared_schema.commands import (
    activate_message, cancel_message, command_id, program_messages, rollback_message,
)

from cloud.engine.decide import decide
from cloud.engine.state import (
    FINISHED, TARGET_STATUSES, Ack, Deployment as DepState, Send, Target as TargetState, UpdateDeployment, UpdateTarget,
)
from cloud.db import _real, chunks, for_update, insert_rows, select_in, update_in
from cloud.errors import NotFound
from cloud.models import Command, Deployment, DeploymentEvent, Device, Program, Target
from cloud.secrets import SecretBox
from cloud.store import webhooks
from cloud.store.flows import quarantine_version
from cloud.timefmt import iso

_DEP_FIELDS = ("status", "phase", "batch", "phase_since", "started_at", "finished_at", "reason", "pace")
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


class StepResult(NamedTuple):
    outgoing: list[tuple[str, list[dict]]]  # (device_id, messages) to publish
    update: dict | None  # what changed, for live streams: {"deployment": {...}, "targets": [...]}


def step(dep_id: str, events: list, now: float, box: SecretBox) -> StepResult:
    """Decide on `events` at `now` and record the outcome; returns the
    commands to publish and what changed. Raises IllegalTransition
    (nothing recorded) for a user command the status does not allow.

    Built for big fleets: one query for the targets, and updates grouped so
    a batch of thousands is a handful of statements, not thousands."""
    # Replicas: a user command run by one replica and a step of the one
    # holding the lease (cloud.store.leases, rule 5) take turns here.
    dep = for_update(Deployment.select().where(Deployment.id == dep_id)).get_or_none()
    if dep is None:
        raise NotFound(f"no deployment {dep_id!r}")
    ds = DepState(id=dep.id, strategy=dep.strategy, settings=dep.settings,
                  **{k: getattr(dep, k) for k in _DEP_FIELDS})
    kept = _targets(dep)
    try:
        return _step(dep, ds, kept, events, now, box)
    except BaseException:
        _KEPT.pop(dep_id, None)  # changed in place, or ahead of a transaction that will not commit
        raise


def _step(dep: Deployment, ds: DepState, kept: "_Kept", events: list, now: float, box: SecretBox) -> StepResult:
    dep_id, ts, meta = dep.id, kept.ts, kept.meta
    actions = decide(ds, ts, events, now, in_place=True, by_id=kept.by_id)

    log = [_event_row(dep_id, now, e) for e in events if not isinstance(e, Ack)]
    dep_changes: dict = {}
    target_changes: dict[str, dict] = {}
    sends: list[Send] = []
    for action in actions:
        if isinstance(action, UpdateDeployment):
            dep_changes.update(action.fields)
            if "status" in action.fields:
                log.append({"deployment": dep_id, "at": now, "kind": "status", "device": "",
                            "detail": {"status": action.fields["status"], "reason": action.fields.get("reason")}})
        elif isinstance(action, UpdateTarget):
            target_changes.setdefault(action.device_id, {}).update(action.fields, updated_at=now)
            if "status" in action.fields:
                reason = target_changes[action.device_id].get("reason")
                log.append({"deployment": dep_id, "at": now, "kind": "target", "device": action.device_id,
                            "detail": {"status": action.fields["status"], "reason": reason or None}})
        elif isinstance(action, Send):
            sends.append(action)
    reasons = {d: f.get("reason", "") for d, f in target_changes.items()}
    outgoing = _commands(dep, sends, meta, reasons, now, box)
    for send, (_dev, messages) in zip(sends, outgoing):
        target_changes.setdefault(send.device_id, {})["seq"] = meta[send.device_id]["seq"]
        log.append({"deployment": dep_id, "at": now, "kind": "send", "device": send.device_id,
                    "detail": {"step": send.step, "id": messages[0]["id"]}})

    if dep_changes or target_changes:
        # A new revision: what this process keeps in memory is what is stored
        # only if no other step (another process, a rolled-back transaction)
        # has been in between.
        kept.before = (kept.rev, dict(kept.counts))  # what a reader sees until this commits
        kept.rev = _random.token_hex(8)
        Deployment.update(rev=kept.rev, **dep_changes).where(Deployment.id == dep_id).execute()
    if dep_changes.get("status") == "rolled_back":
        # the version that made its deployment roll back is not "latest" any more
        quarantine_version(dep.flow, dep.version, dep_changes.get("reason") or dep.reason or "rolled back",
                           now, dep_id)
    if dep_changes:
        if "status" in dep_changes:
            webhooks.emit(f"deployment.{dep_changes['status']}", {
                "id": dep_id, "flow_id": dep.flow, "version": dep.version, "strategy": dep.strategy,
                "status": dep_changes["status"], "reason": dep_changes.get("reason") or dep.reason or None}, now)
    groups: dict[tuple, list[int]] = {}
    for device_id, fields in target_changes.items():
        groups.setdefault(tuple(sorted(fields.items())), []).append(meta[device_id]["id"])
    for fields, ids in groups.items():
        update_in(Target, dict(fields), ids)
    done, heard = {}, {}  # command ids, each once, in order
    for a in events:
        if isinstance(a, Ack):
            final = a.state in _FINAL.get(a.step, ()) or (
                a.step in ("deploy", "activate") and a.state == "applied" and not dep.settings["health_check"])
            (done if final else heard)[command_id(dep_id, a.device_id, a.step)] = None
    update_in(Command, {"done": True}, list(done))
    # The device has the command (it acked it on the way): not a message
    # lost in transit, so the re-send timer starts again from now. One that
    # is done in this step too needs no timer (a burst brings `received`,
    # `applied` and `healthy` together: 200,000 row updates saved at 100,000).
    update_in(Command, {"last_sent_at": now}, [c for c in heard if c not in done])
    insert_rows(DeploymentEvent, log)
    update = None
    if dep_changes or target_changes:
        public = {k: (iso(v) if k.endswith("_at") else v) for k, v in dep_changes.items()
                  if k not in ("phase_since", "pace")}
        if "pace" in dep_changes:
            public["rate_per_minute"] = dep_changes["pace"]["rate"]
        kept.recount(target_changes)
        public["counts"] = dict(kept.counts)  # a watcher of a big deployment keeps its counts without the targets
        update = {"id": dep_id, "deployment": public, "targets": [
            {"device_id": d, **{k: (iso(v) if k == "updated_at" else v) for k, v in f.items()
                                if k in ("status", "step", "ack", "seq", "reason", "updated_at")}}
            for d, f in target_changes.items()]}
    if dep_changes.get("status", dep.status) in FINISHED and not any(t.status == "deploying" for t in ts):
        _KEPT.pop(dep_id, None)  # nothing left to decide on but a late ack
    return StepResult(outgoing, update)


class _Kept:
    """A deployment's targets as of revision `rev`: kept in memory between
    steps, so a step of a 100,000-target rollout does not read and convert
    every row again (that read cost more than the step itself)."""

    def __init__(self, rev: str, ts: list, meta: dict):
        self.rev, self.ts, self.meta = rev, ts, meta
        self.before: tuple = (None, {})  # the revision before `rev` and its counts
        self.by_id = {t.device_id: t for t in ts}  # decide's index, built once, not every step
        self.statuses = [t.status for t in ts]  # as stored, by position: what moves the counts
        self.counts = dict.fromkeys(TARGET_STATUSES, 0)
        for status in self.statuses:
            self.counts[status] += 1

    def recount(self, device_ids) -> None:
        """Move the counts of the targets a step changed (O(changes))."""
        for device_id in device_ids:
            i = self.meta[device_id]["i"]
            old, new = self.statuses[i], self.ts[i].status
            if old != new:
                self.counts[old] -= 1
                self.counts[new] += 1
                self.statuses[i] = new


_KEPT: OrderedDict[str, _Kept] = OrderedDict()
KEPT_MAX = 8  # deployments kept; the least recently stepped goes first


def kept_counts(dep: Deployment) -> dict | None:
    """The deployment's targets per status from the copy kept in memory, when
    it is the stored revision (a big rollout's document without a GROUP BY
    over every target row each time it is read); else None."""
    kept = _KEPT.get(dep.id)
    if kept is None or not dep.rev:
        return None
    if kept.rev == dep.rev:
        return dict(kept.counts)
    # The reader thread (cloud.db.Database.query) sees the last commit while
    # a step is still writing the next revision: those counts are kept too.
    rev, counts = kept.before
    return dict(counts) if rev == dep.rev else None


def _targets(dep: Deployment) -> _Kept:
    """The targets of `dep` in order, with each one's row id, board and seq;
    from memory when its revision is the stored one, else read afresh."""
    kept = _KEPT.get(dep.id)
    if kept is not None and dep.rev and kept.rev == dep.rev:
        _KEPT.move_to_end(dep.id)
        return kept
    # Raw rows, not peewee's per-value conversion: 100,000 of them in a big rollout.
    sql, params = (Target.select(Target.id, Target.device, Target.board, Target.seq,
                                 *[getattr(Target, k) for k in _TARGET_FIELDS])
                   .where(Target.deployment == dep.id).order_by(Target.position).sql())
    ts, meta = [], {}
    for i, row in enumerate(Target._meta.database.execute_sql(sql, params).fetchall()):
        ts.append(TargetState(row[1], row[4], row[5], row[6], row[7], row[8], bool(row[9]), row[10]))
        meta[row[1]] = {"id": row[0], "board": row[2], "seq": row[3], "i": i}
    kept = _KEPT[dep.id] = _Kept(dep.rev, ts, meta)
    while len(_KEPT) > KEPT_MAX:
        _KEPT.popitem(last=False)
    return kept


def _event_row(dep_id: str, now: float, event) -> dict:
    return {"deployment": dep_id, "at": now, "kind": type(event).__name__.lower(), "device": "",
            "detail": {"reason": getattr(event, "reason", None)}}


def _health(settings: dict) -> dict:
    if not settings["health_check"]:
        return {"runs": 0, "seconds": 0, "max_error_rate": 1.0}
    rule = dict(settings["health"])
    rule["seconds"] = int(rule["seconds"]) if float(rule["seconds"]).is_integer() else rule["seconds"]
    return rule


def _in_flight(dep_id: str, device_ids: list[str]) -> dict[str, str]:
    """The step each device was last sent of deploy, stage and activate
    (what a cancel cancels), from the outbox."""
    steps: dict[str, tuple[float, str]] = {}
    for chunk in chunks(device_ids):
        for device_id, step, at in (Command.select(Command.device, Command.step, Command.created_at)
                                    .where((Command.deployment == dep_id) & Command.device.in_(chunk)
                                           & Command.step.in_(("deploy", "stage", "activate"))).tuples()):
            if device_id not in steps or at >= steps[device_id][0]:
                steps[device_id] = (at, step)
    return {d: step for d, (_at, step) in steps.items()}


def _commands(dep: Deployment, sends: list[Send], meta: dict, reasons: dict, now: float,
              box: SecretBox) -> list[tuple[str, list[dict]]]:
    """The messages of each Send, built once: a command decided before (a
    restart, a repeat) is the very same bytes again."""
    if not sends:
        return []
    ids = [command_id(dep.id, s.device_id, s.step) for s in sends]
    existing = dict(select_in(Command, [Command.id, Command.payload], ids))
    fresh = [s for s, cid in zip(sends, ids) if cid not in existing]
    # Every fresh command is signed with a number of its own from the
    # device's counter: a deploy/stage as its envelope's seq, the others as
    # their cseq (shared_schema.envelope.signed_command).
    counts: dict[str, int] = {}
    for s in fresh:
        counts[s.device_id] = counts.get(s.device_id, 0) + 1
    taken = take_seqs(counts)
    next_seq = {d: last - counts[d] for d, (last, _sealed) in taken.items()}
    keys: dict[str, bytes] = {}
    programs = {}
    for board in {meta[s.device_id]["board"] for s in fresh if s.step in ("deploy", "stage")}:
        row = Program.get((Program.deployment == dep.id) & (Program.board == board))
        programs[board] = CompiledProgram(row.data.encode("ascii"), row.sha256, row.size, dep.flow, dep.version,
                                          board)
    before = _in_flight(dep.id, [s.device_id for s in fresh if s.step == "cancel"])
    new_rows, superseded = [], []
    out = []
    for send, cmd_id in zip(sends, ids):
        if cmd_id in existing:
            out.append((send.device_id, existing[cmd_id]))
            continue
        device_id, info = send.device_id, meta[send.device_id]
        next_seq[device_id] += 1
        seq = next_seq[device_id]
        key = keys.get(device_id)
        if key is None:
            key = keys[device_id] = box.open(taken[device_id][1])
        if send.step in ("deploy", "stage"):
            info["seq"] = seq
            messages = program_messages(cmd_id, send.step, programs[info["board"]], device_id, key, seq,
                                        _health(dep.settings) if send.step == "deploy" else None)
        elif send.step == "activate":
            messages = [activate_message(cmd_id, info["seq"], _health(dep.settings), device_id, key, seq)]
        elif send.step == "rollback":
            messages = [rollback_message(cmd_id, reasons.get(device_id) or "rolled back", device_id, key, seq)]
            superseded.append(device_id)
        else:  # cancel whatever this deployment had in flight on the device
            prev = before.get(device_id)
            target = command_id(dep.id, device_id, prev) if prev in ("deploy", "stage", "activate") else None
            messages = [cancel_message(cmd_id, target, device_id, key, seq)]
            superseded.append(device_id)
        new_rows.append({"id": cmd_id, "deployment": dep.id, "device": device_id, "step": send.step,
                         "payload": messages, "created_at": now})
        out.append((device_id, messages))
    # A rollback or cancel replaces whatever was still to be delivered.
    for chunk in chunks(superseded):
        Command.update(done=True).where((Command.deployment == dep.id) & (Command.device.in_(chunk))
                                        & (Command.step.in_(("deploy", "stage", "activate")))).execute()
    insert_rows(Command, new_rows)
    return out


def take_seqs(counts: dict[str, int]) -> dict[str, tuple[int, str]]:
    """Take `n` fresh numbers from each device's sequence counter (`counts`:
    device -> n); returns device -> (the last one taken, its sealed key): the
    numbers are last-n+1 .. last. The counter is raised in SQL (seq = seq +
    n) inside the caller's transaction, so two writers (replicas on one
    PostgreSQL) never take the same number; a device that is gone is left out."""
    by_n: dict[int, list[str]] = {}
    for device_id, n in counts.items():
        by_n.setdefault(n, []).append(device_id)
    for n, device_ids in by_n.items():
        for chunk in chunks(device_ids):
            Device.update(seq=Device.seq + n).where(Device.id.in_(chunk)).execute()
    return {d: (seq, sealed) for d, seq, sealed in select_in(Device, [Device.id, Device.seq, Device.key_sealed],
                                                              list(counts))}


def pending_commands(device_id: str | None = None) -> list[tuple[str, list[dict]]]:
    """Commands not yet answered, oldest first (for one device or all)."""
    query = Command.select().where(Command.done == False).order_by(Command.created_at, Command.id)  # noqa: E712
    if device_id is not None:
        query = query.where(Command.device == device_id)
    return [(c.device, c.payload) for c in query]


def chunks_from(xfer: str, device_id: str, first: int) -> list[dict]:
    """The chunk commands of an unanswered chunked command to `device_id`, from chunk `first` on."""
    c = Command.get_or_none((Command.id == xfer) & (Command.device == device_id) & (Command.done == False))  # noqa: E712
    if c is None or not isinstance(c.payload, list):
        return []
    return [m for m in c.payload if m.get("op") == "chunk" and m.get("i", -1) >= first]


RESEND_MAX = 2000  # stale commands sent again in one round, oldest first


def stale_commands(now: float, older_than_s: float, limit: int = RESEND_MAX,
                   skip_owners: list[str] = ()) -> list[tuple[str, list[dict]]]:
    """Commands sent more than `older_than_s` ago and still unanswered: a
    message lost on the way (a broker queue overflowing, say) is sent again
    and the device acks it again with the state it reached.

    At most `limit` a round, the oldest first: in a big rollout most
    unanswered commands are not lost but waiting their turn in the broker
    (100,000 sent at once), and re-sending them all doubled the traffic
    (95,538 of 100,000 sent twice, bench rollout). What was lost is found
    over a few rounds; a reconnect (the cloud's or a device's) re-sends at
    once, without a limit. `skip_owners`: deployments and executions other
    cloud replicas drive (they re-send theirs), left out before the limit."""
    query = Command.select().where((Command.done == False) & (Command.last_sent_at < now - older_than_s))  # noqa: E712
    if skip_owners:
        query = query.where(Command.deployment.not_in(list(skip_owners)))
    query = query.order_by(Command.created_at, Command.id).limit(limit)
    return [(c.device, c.payload) for c in query]


def mark_sent(ids: list[str], now: float) -> None:
    for chunk in chunks(ids):
        Command.update(sent_count=Command.sent_count + 1, last_sent_at=now).where(Command.id.in_(chunk)).execute()


TRIAL_SCAN_S = 10.0  # how often finished deployments are searched for targets still on trial
_trial: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # database -> (when last searched, found)


def active_deployments() -> list[str]:
    """Deployments the driver must keep deciding on: running or paused, or
    finished with targets still on trial (their timeouts still apply).

    The second kind is searched for at most every TRIAL_SCAN_S: it reads
    every target row (there is no index on status), which at 100,000
    targets was a fifth of a big rollout's database thread when done on
    each tick. Its timeouts are minutes; a late ack is decided on at once
    whatever this says (the driver steps every deployment an ack names)."""
    ids = {d.id for d in Deployment.select(Deployment.id).where(Deployment.status.in_(ACTIVE))}
    db, now = _real(Target), time.monotonic()
    searched, trial = _trial.get(db, (None, set()))
    if searched is None or now - searched >= TRIAL_SCAN_S:
        trial = {t.deployment for t in Target.select(Target.deployment).where(Target.status == "deploying")
                 .distinct()}
        _trial[db] = (now, trial)
    return sorted(ids | trial)

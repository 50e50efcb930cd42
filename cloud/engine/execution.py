"""An execution's decision core: `decide(execution, targets, events, now)
-> actions`. No I/O and no clock of its own; cloud.store.executions loads
the state, applies the actions and sends the commands.

Rules
1. Execution: pending -> running -> completed | failed | cancelled |
   timed_out. It is running once any target has answered.
2. Target: pending -> running -> completed | failed | cancelled | timed_out.
   A settled target never changes again (a late or repeated ack is ignored).
3. `received` makes a target running. `rejected` or `failed` fails it at
   once: nothing ran, there is no record to wait for.
4. `done` says how the run went (completed or failed) and names it (its
   run number); the target takes that status only once the run's record is
   stored (`RecordStored`, or a record already known to the shell), so the
   log is there when the status says the run ended (seed 000). A record
   may come before or after its `done`.
5. Cancel is allowed while pending or running (else `IllegalTransition`,
   nothing changes): every open target is cancelled and the open ones the
   shell loaded are sent a `cancel`.
6. At `created_at + timeout` no target stays open: one whose `done` came
   but whose record never did settles as its `done` said, with that reason;
   the rest become timed_out.
7. The execution ends when no target is open: failed if any failed, else
   timed_out if any timed out, else completed. Ending (cancel too) is a
   `Finished` action: the shell emits the webhook and tells the pipeline
   the execution is a step of.

Scale: an execution may have 100,000 targets and a batch of acks names a
few. The shell passes only the targets the events name, plus (past the
timeout) every target that awaits its record, plus (for a cancel) every
open one; `counts` holds
all targets per status, and what must happen to the open targets not passed
is one `UpdateOtherOpen` action (a single UPDATE in the shell).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.errors import Conflict

STATUSES = ("pending", "running", "completed", "failed", "cancelled", "timed_out")
TARGET_STATUSES = STATUSES
FINISHED = frozenset({"completed", "failed", "cancelled", "timed_out"})
OPEN = ("pending", "running")


class IllegalTransition(Conflict):
    """A user command that the execution's status does not allow."""


@dataclass
class Execution:
    id: str
    created_at: float
    timeout: float
    status: str = "pending"
    started_at: float | None = None
    finished_at: float | None = None
    counts: dict = field(default_factory=dict)  # every target, per status


@dataclass
class Target:
    device_id: str
    status: str = "pending"
    run: int | None = None  # the run `done` named
    outcome: str = ""  # how that run went (`done`'s status), until its record is stored
    records: frozenset = frozenset()  # run numbers of this execution's records stored from the device
    reason: str = ""
    finished_at: float | None = None


# Events -------------------------------------------------------------------

@dataclass(frozen=True)
class ExecAck:
    device_id: str
    state: str  # received | done | rejected | failed (others are ignored)
    reason: str = ""
    run: int | None = None
    run_status: str | None = None  # done: completed | failed


@dataclass(frozen=True)
class RecordStored:
    """A run record of this execution from `device_id` is in the database."""

    device_id: str
    run: int


@dataclass(frozen=True)
class Cancel:
    reason: str = "cancelled by user"


# Actions ------------------------------------------------------------------

@dataclass(frozen=True)
class UpdateExecution:
    fields: dict


@dataclass(frozen=True)
class UpdateTarget:
    device_id: str
    fields: dict


@dataclass(frozen=True)
class UpdateOtherOpen:
    """Every open target that was not passed to `decide` gets `fields`."""

    fields: dict


@dataclass(frozen=True)
class SendCancel:
    device_id: str


@dataclass(frozen=True)
class Finished:
    status: str


def decide(execution: Execution, targets: list[Target], events, now: float) -> list:
    """The actions that follow from `events` at `now`; the inputs are not changed."""
    core = _Core(execution, targets, now)
    for event in events:
        core.handle(event)
    core.advance()
    return core.actions


class _Core:
    def __init__(self, execution: Execution, targets: list[Target], now: float):
        self.exe = Execution(**{**execution.__dict__, "counts": {s: 0 for s in STATUSES} | execution.counts})
        self.targets = [Target(**t.__dict__) for t in targets]
        self.by_id = {t.device_id: t for t in self.targets}
        self.now = now
        self.actions: list = []

    def _set(self, target: Target, **fields):
        changed = {k: v for k, v in fields.items() if getattr(target, k) != v}
        if not changed:
            return
        if "status" in changed:
            self.exe.counts[target.status] -= 1
            self.exe.counts[changed["status"]] += 1
        for key, value in changed.items():
            setattr(target, key, value)
        self.actions.append(UpdateTarget(target.device_id, changed))

    def _set_exe(self, **fields):
        changed = {k: v for k, v in fields.items() if getattr(self.exe, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(self.exe, key, value)
            self.actions.append(UpdateExecution(changed))

    # -- events ----------------------------------------------------------------

    def handle(self, event):
        if isinstance(event, Cancel):
            self._cancel(event)
            return
        target = self.by_id.get(event.device_id)
        if target is None or target.status in FINISHED:
            return
        if isinstance(event, RecordStored):
            target.records = target.records | {event.run}
            if target.outcome and target.run == event.run:
                self._settle(target)
            return
        if event.state == "received":
            if target.status == "pending":
                self._set(target, status="running")
        elif event.state == "done":
            outcome = "completed" if event.run_status == "completed" else "failed"
            self._set(target, status="running", run=event.run, outcome=outcome, reason=event.reason or "")
            if event.run is None or event.run in target.records:
                self._settle(target)
        elif event.state in ("rejected", "failed"):
            self._set(target, status="failed", reason=event.reason or event.state, finished_at=self.now)

    def _settle(self, target: Target, reason: str | None = None):
        fields = {"status": target.outcome, "finished_at": self.now}
        if reason is not None:
            fields["reason"] = reason
        self._set(target, **fields)

    def _cancel(self, event: Cancel):
        if self.exe.status in FINISHED:
            raise IllegalTransition(f"execution {self.exe.id} is {self.exe.status}", current_status=self.exe.status,
                                    allowed=list(OPEN))
        for t in self.targets:
            if t.status in OPEN:
                self.actions.append(SendCancel(t.device_id))
                self._set(t, status="cancelled", reason=event.reason, finished_at=self.now)
        self._others("cancelled", event.reason)
        self._set_exe(status="cancelled", finished_at=self.now)
        self.actions.append(Finished("cancelled"))

    def _others(self, status: str, reason: str):
        rest = self.exe.counts["pending"] + self.exe.counts["running"]
        if rest:
            self.actions.append(UpdateOtherOpen({"status": status, "reason": reason, "finished_at": self.now}))
            self.exe.counts[status] += rest
            self.exe.counts["pending"] = self.exe.counts["running"] = 0

    # -- time and the end --------------------------------------------------------

    def advance(self):
        if self.exe.status in FINISHED:
            return
        if self.now - self.exe.created_at >= self.exe.timeout:
            limit = f"{self.exe.timeout:g}s"
            for t in self.targets:
                if t.status in OPEN and t.outcome:
                    self._settle(t, f"{t.reason + '; ' if t.reason else ''}its run record did not arrive within {limit}")
                elif t.status in OPEN:
                    self._set(t, status="timed_out", reason=f"no result within {limit}", finished_at=self.now)
            self._others("timed_out", f"no result within {limit}")
        counts = self.exe.counts
        if self.exe.status == "pending" and any(n for s, n in counts.items() if s != "pending"):
            self._set_exe(status="running", started_at=self.now)
        if sum(counts.values()) and not counts["pending"] and not counts["running"]:
            status = "failed" if counts["failed"] else "timed_out" if counts["timed_out"] else "completed"
            self._set_exe(status=status, finished_at=self.now)
            self.actions.append(Finished(status))

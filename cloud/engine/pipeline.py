"""A pipeline run's decision core: `decide(run, events, now) -> actions`.
No I/O and no clock of its own; cloud.store.pipelines loads the run,
applies the actions, starts and cancels the step executions.

Rules
1. Run: pending -> running -> completed | failed | cancelled. `Start`
   makes it running and starts step 0.
2. Steps run one at a time, in order, each an execution of its flow
   (`StartStep`; the shell answers `StepStartFailed` when the execution
   cannot be created, e.g. the flow has no published version: the step
   fails with that error). Step: pending -> running -> completed | failed |
   skipped.
3. When the current step's execution ends (`ExecutionEnded`) the step is
   completed if the execution completed, else failed. A `manual` step
   waits on a person instead: it records how its execution ended and stays
   running until an `Advance`.
4. `Advance(success)` ("Step Done" / "Step Failed", seed 003) ends the
   current step by hand, manual or not: completed on success, else failed;
   an execution of it still open is cancelled. Only a running run can be
   advanced.
5. After a step: a failed step with `on_failure: stop` skips the rest and
   the run fails; otherwise the next step starts, and after the last one
   the run completes (a failed `continue` step does not fail the run).
6. `Cancel` (pending or running): the running step fails ("cancelled") and
   its execution is cancelled, pending steps are skipped, the run is
   cancelled.
7. A command the status does not allow raises `IllegalTransition`, and
   nothing changes. An event about an execution that is not the current
   step's is ignored (a late report of an earlier step).
8. A run that ends gives a `Finished` action (the shell emits the webhook).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from cloud.errors import Conflict

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
RUN_FINISHED = frozenset({"completed", "failed", "cancelled"})
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped")


class IllegalTransition(Conflict):
    """A command that the run's status does not allow."""


@dataclass
class Run:
    id: str
    steps: list[dict]  # the snapshot: step_index, status, execution_id, ... (seed 003's RunStepState)
    plan: list[dict]  # the pipeline's steps: on_failure, manual
    status: str = "pending"
    current_step: int = 0
    started_at: float | None = None
    completed_at: float | None = None


# Events -------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class ExecutionEnded:
    execution_id: str
    status: str  # the execution's: completed | failed | cancelled | timed_out
    cause: str = ""  # "device: error" of its first failed target, for the step's error


@dataclass(frozen=True)
class StepStartFailed:
    index: int
    error: str


@dataclass(frozen=True)
class Advance:
    success: bool


@dataclass(frozen=True)
class Cancel:
    pass


# Actions ------------------------------------------------------------------

@dataclass(frozen=True)
class UpdateRun:
    fields: dict


@dataclass(frozen=True)
class UpdateStep:
    index: int
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StartStep:
    index: int


@dataclass(frozen=True)
class CancelExecution:
    execution_id: str


@dataclass(frozen=True)
class Finished:
    status: str


ALLOWED = {Start: {"pending"}, Advance: {"running"}, Cancel: {"pending", "running"}}
_VERB = {Start: "start", Advance: "advance", Cancel: "cancel"}


def decide(run: Run, events, now: float) -> list:
    """The actions that follow from `events` at `now`; `run` is not changed."""
    core = _Core(run, now)
    for event in events:
        core.handle(event)
    return core.actions


def apply(run: Run, actions) -> None:
    """Apply the state changes among `actions` to `run` in place."""
    for action in actions:
        if isinstance(action, UpdateRun):
            for key, value in action.fields.items():
                setattr(run, key, value)
        elif isinstance(action, UpdateStep):
            run.steps[action.index].update(action.fields)


class _Core:
    def __init__(self, run: Run, now: float):
        self.run = Run(**{**run.__dict__, "steps": copy.deepcopy(run.steps)})
        self.now = now
        self.actions: list = []

    def _set_run(self, **fields):
        changed = {k: v for k, v in fields.items() if getattr(self.run, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(self.run, key, value)
            self.actions.append(UpdateRun(changed))

    def _set_step(self, index: int, **fields):
        step = self.run.steps[index]
        changed = {k: v for k, v in fields.items() if step.get(k) != v}
        if changed:
            step.update(changed)
            self.actions.append(UpdateStep(index, changed))

    def handle(self, event):
        kind = type(event)
        if kind in ALLOWED and self.run.status not in ALLOWED[kind]:
            raise IllegalTransition(f"cannot {_VERB[kind]} run {self.run.id}: it is {self.run.status}",
                                    current_status=self.run.status, allowed=sorted(ALLOWED[kind]))
        if kind is Start:
            self._set_run(status="running", started_at=self.now)
            self._start(0)
        elif kind is ExecutionEnded:
            self._on_execution(event)
        elif kind is StepStartFailed:
            if self.run.status == "running" and event.index == self.run.current_step:
                self._end_step(event.index, False, event.error)
        elif kind is Advance:
            index = self.run.current_step
            step = self.run.steps[index]
            if step["status"] != "running":
                raise IllegalTransition(f"step {index} of run {self.run.id} is {step['status']}: nothing to advance",
                                        current_status=self.run.status)
            if step.get("execution_id") and step.get("execution_status") is None:
                self.actions.append(CancelExecution(step["execution_id"]))
            self._end_step(index, event.success, None if event.success else "marked failed by hand")
        elif kind is Cancel:
            for i, step in enumerate(self.run.steps):
                if step["status"] == "running":
                    if step.get("execution_id") and step.get("execution_status") is None:
                        self.actions.append(CancelExecution(step["execution_id"]))
                    self._set_step(i, status="failed", completed_at=self.now, error="cancelled")
                elif step["status"] == "pending":
                    self._set_step(i, status="skipped")
            self._finish("cancelled")

    def _on_execution(self, event: ExecutionEnded):
        index = self.run.current_step
        step = self.run.steps[index]
        if self.run.status != "running" or step["status"] != "running" or step.get("execution_id") != event.execution_id:
            return  # rule 7: not the current step's execution
        self._set_step(index, execution_status=event.status)
        if self.run.plan[index].get("manual"):
            self._set_step(index, waiting=True)  # rule 3: a person says how it went
            return
        ok = event.status == "completed"
        cause = f": {event.cause}" if event.cause else ""
        self._end_step(index, ok, None if ok else f"execution {event.execution_id} {event.status}{cause}")

    def _start(self, index: int):
        self._set_run(current_step=index)
        self._set_step(index, status="running", started_at=self.now)
        self.actions.append(StartStep(index))

    def _end_step(self, index: int, ok: bool, error: str | None):
        self._set_step(index, status="completed" if ok else "failed", completed_at=self.now, error=error,
                       waiting=False)
        if not ok and self.run.plan[index].get("on_failure", "stop") == "stop":
            for later in range(index + 1, len(self.run.steps)):
                self._set_step(later, status="skipped")
            self._finish("failed")
        elif index + 1 < len(self.run.steps):
            self._start(index + 1)
        else:
            self._finish("completed")

    def _finish(self, status: str):
        self._set_run(status=status, completed_at=self.now)
        self.actions.append(Finished(status))

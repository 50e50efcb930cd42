"""Pipeline runs' pure core (cloud.engine.pipeline), driven with a fake clock."""

from __future__ import annotations

import copy

import pytest

from cloud.engine.pipeline import (
    Advance, Cancel, CancelExecution, ExecutionEnded, Finished, IllegalTransition, Run, Start, StartStep,
    StepStartFailed, apply, decide,
)

T0 = 500.0


class Pipe:
    """A run advanced by decide() as the store would: each started step gets
    an execution id `e<index>`."""

    def __init__(self, *plan):
        self.run = Run("plr_1", [{"step_index": i, "status": "pending", "execution_id": None,
                                  "execution_status": None, "waiting": False, "error": None}
                                 for i in range(len(plan))], [dict(p) for p in plan])
        self.started: list[int] = []
        self.cancelled: list[str] = []

    def at(self, seconds, *events):
        actions = decide(self.run, list(events), T0 + seconds)
        apply(self.run, actions)
        for a in actions:
            if isinstance(a, StartStep):
                self.started.append(a.index)
                self.run.steps[a.index]["execution_id"] = f"e{a.index}"
            elif isinstance(a, CancelExecution):
                self.cancelled.append(a.execution_id)
        return [a.status for a in actions if isinstance(a, Finished)]

    def steps(self):
        return [s["status"] for s in self.run.steps]


STOP, CONTINUE, MANUAL = {"on_failure": "stop"}, {"on_failure": "continue"}, {"on_failure": "stop", "manual": True}

# (name, plan, events after Start (each fed at its own second), run status, step statuses, steps started)
TABLE = [
    ("steps run in order", (STOP, STOP), [ExecutionEnded("e0", "completed"), ExecutionEnded("e1", "completed")],
     "completed", ["completed", "completed"], [0, 1]),
    ("a failed stop step skips the rest", (STOP, STOP, CONTINUE), [ExecutionEnded("e0", "timed_out")],
     "failed", ["failed", "skipped", "skipped"], [0]),
    ("a failed continue step is passed over", (CONTINUE, STOP),
     [ExecutionEnded("e0", "failed"), ExecutionEnded("e1", "completed")], "completed", ["failed", "completed"], [0, 1]),
    ("a step that cannot start fails", (STOP, STOP), [StepStartFailed(0, "no published version")],
     "failed", ["failed", "skipped"], [0]),
    ("a late report of an earlier step is ignored", (CONTINUE, STOP),
     [ExecutionEnded("e0", "failed"), ExecutionEnded("e0", "completed")], "running", ["failed", "running"], [0, 1]),
    ("a manual step waits on a person after its execution", (MANUAL, STOP), [ExecutionEnded("e0", "completed")],
     "running", ["running", "pending"], [0]),
    ("Step Done moves on", (MANUAL, STOP), [ExecutionEnded("e0", "failed"), Advance(True)],
     "running", ["completed", "running"], [0, 1]),
    ("Step Failed stops a stop step", (MANUAL, STOP), [ExecutionEnded("e0", "completed"), Advance(False)],
     "failed", ["failed", "skipped"], [0]),
    ("cancel fails the running step and skips the rest", (STOP, STOP, STOP), [Cancel()],
     "cancelled", ["failed", "skipped", "skipped"], [0]),
]


@pytest.mark.parametrize("name,plan,events,status,steps,started", TABLE, ids=[r[0] for r in TABLE])
def test_pipeline_table(name, plan, events, status, steps, started):
    pipe = Pipe(*plan)
    pipe.at(0, Start())
    for i, event in enumerate(events, 1):
        pipe.at(i, event)
    assert (pipe.run.status, pipe.steps(), pipe.started) == (status, steps, started)


def test_advance_on_a_running_execution_cancels_it_and_records_who_decided():
    pipe = Pipe(STOP, STOP)
    pipe.at(0, Start())
    assert pipe.at(3, Advance(False)) == ["failed"]
    assert pipe.cancelled == ["e0"] and pipe.run.steps[0]["error"] == "marked failed by hand"
    assert pipe.run.steps[0]["completed_at"] == T0 + 3 and pipe.run.completed_at == T0 + 3


def test_a_waiting_manual_step_is_not_cancelled_twice():
    pipe = Pipe(MANUAL, STOP)
    pipe.at(0, Start())
    pipe.at(1, ExecutionEnded("e0", "completed"))
    assert pipe.run.steps[0]["waiting"] and pipe.run.steps[0]["execution_status"] == "completed"
    pipe.at(2, Advance(True))
    assert pipe.cancelled == [] and not pipe.run.steps[0]["waiting"]


@pytest.mark.parametrize("event, statuses", [(Start(), ("running", "completed", "cancelled")),
                                             (Advance(True), ("pending", "completed", "failed", "cancelled")),
                                             (Cancel(), ("completed", "failed", "cancelled"))])
def test_illegal_commands_raise_and_change_nothing(event, statuses):
    for status in statuses:
        pipe = Pipe(STOP, STOP)
        pipe.run.status = status
        before = copy.deepcopy(pipe.run)
        with pytest.raises(IllegalTransition, match=f"it is {status}"):
            decide(pipe.run, [event], T0)
        assert pipe.run == before


def test_decide_leaves_its_input_alone():
    pipe = Pipe(STOP, STOP)
    before = copy.deepcopy(pipe.run)
    actions = decide(pipe.run, [Start()], T0)
    assert pipe.run == before and StartStep(0) in actions


def test_a_failed_step_says_why_its_execution_failed():
    pipe = Pipe(STOP, STOP)
    pipe.at(0, Start())
    pipe.at(1, ExecutionEnded("e0", "failed", "p1: s2: ValueError"))
    assert pipe.run.steps[0]["error"] == "execution e0 failed: p1: s2: ValueError"

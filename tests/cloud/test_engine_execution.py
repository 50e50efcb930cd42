"""The executions' pure core (cloud.engine.execution), driven with a fake clock."""

from __future__ import annotations

import copy

import pytest

from cloud.engine.execution import (
    Cancel, ExecAck, Execution, Finished, IllegalTransition, RecordStored, SendCancel, Target, UpdateExecution,
    UpdateOtherOpen, UpdateTarget, decide,
)

T0 = 1000.0


def exe(status="pending", timeout=60.0, **counts):
    return Execution("exe_1", T0, timeout, status, counts=counts)


def received(d):
    return ExecAck(d, "received")


def done(d, run=4, status="completed", reason=""):
    return ExecAck(d, "done", reason, run, status)


def target_changes(actions):
    merged: dict[str, dict] = {}
    for a in actions:
        if isinstance(a, UpdateTarget):
            merged.setdefault(a.device_id, {}).update(a.fields)
    return merged


def ends(actions):
    return [a.status for a in actions if isinstance(a, Finished)]


# (name, execution, targets, events, at seconds, expected target changes, execution status after, finished)
TABLE = [
    ("received starts the target and the execution",
     exe(pending=2), [Target("a")], [received("a")], 1,
     {"a": {"status": "running"}}, "running", []),
    ("done waits for the run's record",
     exe("running", running=1), [Target("a", "running")], [done("a")], 2,
     {"a": {"run": 4, "outcome": "completed"}}, "running", []),
    ("done with the record already stored settles at once",
     exe("running", running=1), [Target("a", "running", records=frozenset({4}))], [done("a")], 2,
     {"a": {"status": "completed", "run": 4, "outcome": "completed", "finished_at": T0 + 2}}, "completed",
     ["completed"]),
    ("the record after done settles it",
     exe("running", running=1), [Target("a", "running", run=4, outcome="failed", reason="s2: boom")],
     [RecordStored("a", 4)], 3, {"a": {"status": "failed", "finished_at": T0 + 3}}, "failed", ["failed"]),
    ("an earlier run's record is not the one done named",
     exe("running", running=1), [Target("a", "running", run=4, outcome="completed")],
     [RecordStored("a", 3)], 3, {}, "running", []),
    ("rejected fails at once: nothing ran",
     exe("running", running=1, completed=1), [Target("a", "running")], [ExecAck("a", "rejected", "bad sig")], 1,
     {"a": {"status": "failed", "reason": "bad sig", "finished_at": T0 + 1}}, "failed", ["failed"]),
    ("a settled target ignores later acks",
     exe("completed", completed=1), [Target("a", "completed")], [ExecAck("a", "failed")], 1, {}, "completed", []),
    ("an unknown device is ignored",
     exe("running", running=1), [Target("a", "running")], [received("zz")], 1, {}, "running", []),
    ("the timeout settles a target awaiting its record as done said",
     exe("running", running=1), [Target("a", "running", run=4, outcome="completed")], [], 60,
     {"a": {"status": "completed", "reason": "its run record did not arrive within 60s", "finished_at": T0 + 60}},
     "completed", ["completed"]),
    ("the timeout times out the rest",
     exe("running", running=1, pending=3), [Target("a", "running")], [], 60,
     {"a": {"status": "timed_out", "reason": "no result within 60s", "finished_at": T0 + 60}}, "timed_out",
     ["timed_out"]),
    ("one failure fails the execution, over timeouts",
     exe("running", running=1, failed=1), [Target("a", "running")], [], 61,
     {"a": {"status": "timed_out", "reason": "no result within 60s", "finished_at": T0 + 61}}, "failed", ["failed"]),
    ("before the timeout nothing moves",
     exe("running", running=2), [Target("a", "running")], [], 59.9, {}, "running", []),
]


@pytest.mark.parametrize("name,state,targets,events,at,changes,status,finished", TABLE, ids=[r[0] for r in TABLE])
def test_execution_table(name, state, targets, events, at, changes, status, finished):
    before = (copy.deepcopy(state), copy.deepcopy(targets))
    actions = decide(state, targets, events, T0 + at)
    assert target_changes(actions) == changes
    new_status = next((a.fields["status"] for a in reversed(actions)
                       if isinstance(a, UpdateExecution) and "status" in a.fields), state.status)
    assert new_status == status
    assert ends(actions) == finished
    assert (state, targets) == before  # decide changes nothing it is given


def test_the_timeout_moves_the_targets_not_loaded_in_one_action():
    actions = decide(exe("running", pending=99_998, running=2), [Target("a", "running")], [], T0 + 60)
    [others] = [a for a in actions if isinstance(a, UpdateOtherOpen)]
    assert others.fields == {"status": "timed_out", "reason": "no result within 60s", "finished_at": T0 + 60}
    assert ends(actions) == ["timed_out"]


def test_cancel_sends_a_cancel_to_each_open_target_and_ends_the_execution():
    targets = [Target("a", "running"), Target("b", "pending"), Target("c", "completed")]
    actions = decide(exe("running", running=1, pending=1, completed=1), targets, [Cancel()], T0 + 5)
    assert [a.device_id for a in actions if isinstance(a, SendCancel)] == ["a", "b"]
    assert {d: f["status"] for d, f in target_changes(actions).items()} == {"a": "cancelled", "b": "cancelled"}
    assert not [a for a in actions if isinstance(a, UpdateOtherOpen)]  # every open one was passed
    assert ends(actions) == ["cancelled"]


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "timed_out"])
def test_an_ended_execution_cannot_be_cancelled(status):
    state, targets = exe(status, completed=1), [Target("a", "completed")]
    with pytest.raises(IllegalTransition, match=f"is {status}"):
        decide(state, targets, [Cancel()], T0 + 1)
    assert state.status == status

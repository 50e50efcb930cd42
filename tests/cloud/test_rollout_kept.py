"""The targets `rollout.step` keeps in memory between steps are trusted only
while they are what is stored: a step that raises, or a transaction that
does not commit, must not leave a change the database never got."""

from __future__ import annotations

import time

import pytest

from cloud.appkeys import BOX, DB
from cloud.engine.decide import IllegalTransition
from cloud.engine.state import Ack, Start
from cloud.models import Deployment
from cloud.store import rollout
from cloud.store.deployments import get_deployment, target_counts


async def _started(api) -> str:
    flow = await api.published_flow()
    for i in (1, 2, 3):
        await api.post("/devices", {"id": f"k{i}", "board": "unix-sim"}, expect=201)
    dep = await api.post("/deployments", {"flow_id": flow["id"], "strategy": "all_at_once",
                                          "target_devices": ["k1", "k2", "k3"]}, expect=201)
    api.app[DB].call(rollout.step, dep["id"], [Start()], time.time(), api.app[BOX])
    return dep["id"]


def _healthy(device_id: str) -> Ack:
    return Ack(device_id, "deploy", "healthy", "")


def _finish_the_others(api, dep_id: str) -> dict:
    """k2 and k3 confirm: the deployment completes only if k1 did too."""
    db, box = api.app[DB], api.app[BOX]
    db.call(rollout.step, dep_id, [_healthy("k2"), _healthy("k3")], time.time(), box)
    return db.call(get_deployment, dep_id)


async def test_a_step_that_raises_leaves_nothing_of_what_it_decided(api):
    dep_id = await _started(api)
    with pytest.raises(IllegalTransition):  # k1's ack is decided (in place), then Start is refused
        api.app[DB].call(rollout.step, dep_id, [_healthy("k1"), Start()], time.time(), api.app[BOX])
    doc = _finish_the_others(api, dep_id)
    assert doc["status"] == "running" and doc["counts"] == dict(doc["counts"], deploying=1, success=2)


async def test_a_step_whose_transaction_is_rolled_back_is_forgotten(api):
    dep_id = await _started(api)
    db = api.app[DB]
    with pytest.raises(RuntimeError):
        with db.peewee.atomic():  # the step succeeds, then its transaction does not commit
            rollout.step(dep_id, [_healthy("k1")], time.time(), api.app[BOX])
            raise RuntimeError("the commit failed")
    doc = _finish_the_others(api, dep_id)
    assert doc["status"] == "running" and [t["status"] for t in doc["targets"]] == ["deploying", "success", "success"]
    assert rollout.kept_counts(db.call(Deployment.get_by_id, dep_id)) == doc["counts"]  # read from the kept copy
    assert doc["counts"] == db.call(target_counts, [dep_id])[dep_id]  # which is what is stored
    db.call(rollout.step, dep_id, [_healthy("k1")], time.time(), api.app[BOX])
    assert db.call(get_deployment, dep_id)["status"] == "completed"


async def test_a_reader_of_the_last_commit_gets_its_counts_while_the_next_is_written(api):
    """The API reads a deployment on the reader thread: it may see the
    revision before the one a step is writing, and its counts come from
    memory too, not from a GROUP BY over every target."""
    dep_id = await _started(api)
    db, box = api.app[DB], api.app[BOX]
    committed = db.call(Deployment.get_by_id, dep_id)
    counts_then = rollout.kept_counts(committed)
    assert counts_then == target_counts([dep_id])[dep_id] and counts_then["deploying"] == 3
    db.call(rollout.step, dep_id, [_healthy("k1")], time.time(), box)  # the next revision
    assert rollout.kept_counts(committed) == counts_then  # as a reader of the old commit sees it
    now = db.call(Deployment.get_by_id, dep_id)
    assert rollout.kept_counts(now) == dict(counts_then, deploying=2, success=1)


async def test_a_command_answered_for_good_in_a_step_is_not_also_touched_for_its_resend_timer(api):
    """`received` and `healthy` of one command in the same step: it is done,
    one row update, not a second one restarting a timer it no longer has."""
    from cloud.models import Command

    dep_id = await _started(api)
    db, box = api.app[DB], api.app[BOX]
    cmd = f"{dep_id}.k1.deploy"
    db.call(rollout.mark_sent, [cmd], 1000.0)
    db.call(rollout.step, dep_id, [Ack("k1", "deploy", "received", ""), _healthy("k1")], time.time(), box)
    row = db.call(Command.get_by_id, cmd)
    assert row.done and row.last_sent_at == 1000.0
    db.call(rollout.step, dep_id, [Ack("k2", "deploy", "received", "")], time.time(), box)  # alone: timer restarts
    assert db.call(Command.get_by_id, f"{dep_id}.k2.deploy").last_sent_at > 1000.0

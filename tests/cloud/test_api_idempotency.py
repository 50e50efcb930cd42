"""Idempotency-Key on the creating POSTs: a retried request gets the first
answer, never a second object (cloud/store/idempotency.py)."""

from __future__ import annotations

import json

from cloud.appkeys import BOX, DB
from cloud.models import IdempotentAnswer
from cloud.store import idempotency

STEP_FLOW = {"name": "tiny", "steps": [{"node": "clear-cache", "params": {}}]}


def _key(value: str) -> dict:
    return {"Idempotency-Key": value}


async def _count(api, path: str, name: str) -> int:
    return len((await api.get(f"{path}?limit=1000"))[name])


async def test_each_creating_post_sent_twice_makes_one_object_and_answers_the_same(api):
    flow = await api.published_flow(STEP_FLOW)
    other = await api.published_flow(dict(STEP_FLOW, name="tiny-2"))
    first_device = await api.post("/devices", {"board": "unix-sim", "tags": ["i"]}, expect=201, headers=_key("dev-1"))
    again = await api.post("/devices", {"board": "unix-sim", "tags": ["i"]}, expect=201, headers=_key("dev-1"))
    assert again == first_device and again["credentials"]["mqtt"]["password"]  # the same credentials, once made
    pipeline = await api.post("/pipelines", {"name": "p", "steps": [{"flow_id": flow["id"]}, {"flow_id": other["id"]}],
                                             "targets": {"target_tags": ["i"]}}, expect=201)
    creating = [("/deployments", {"flow_id": flow["id"], "target_tags": ["i"]}, "/deployments", "deployments"),
                ("/executions", {"flow_id": flow["id"], "target_tags": ["i"]}, "/executions", "executions"),
                (f"/pipelines/{pipeline['id']}/runs", None, f"/pipelines/{pipeline['id']}/runs", "runs")]
    for path, body, listing, name in creating:
        first = await api.post(path, body, expect=201, headers=_key(f"k-{name}"))
        for _ in range(2):
            assert await api.post(path, body, expect=201, headers=_key(f"k-{name}")) == first, path
        assert await _count(api, listing, name) == 1, path
    assert await _count(api, "/devices", "devices") == 1
    resp = await api.client.post("/api/v1/deployments", json={"flow_id": flow["id"], "target_tags": ["i"]},
                                 headers={"x-api-key": api.keys["admin"], **_key("k-deployments")})
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    # the first answer is kept sealed: a device's password is not stored in the clear
    stored = api.app[DB].call(lambda: [r.answer for r in IdempotentAnswer.select()])
    assert stored and not any(first_device["credentials"]["mqtt"]["password"] in text for text in stored)


async def test_a_key_is_scoped_to_the_api_key_that_sent_it(api):
    flow = await api.published_flow(STEP_FLOW)
    await api.post("/devices", {"id": "s1", "board": "unix-sim"}, expect=201)
    body = {"flow_id": flow["id"], "target_devices": ["s1"]}
    mine = await api.post("/deployments", body, expect=201, headers=_key("same"))
    theirs = await api.post("/deployments", body, role="operator", expect=201, headers=_key("same"))
    assert mine["id"] != theirs["id"] and await _count(api, "/deployments", "deployments") == 2


async def test_a_key_reused_for_another_request_or_malformed_is_a_422_naming_it(api):
    flow = await api.published_flow(STEP_FLOW)
    await api.post("/devices", {"id": "r1", "board": "unix-sim"}, expect=201)
    await api.post("/devices", {"id": "r2", "board": "unix-sim"}, expect=201)
    await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["r1"]}, expect=201, headers=_key("k"))
    problem = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["r2"]}, expect=422,
                             headers=_key("k"))
    assert [e["pointer"] for e in problem["errors"]] == ["Idempotency-Key"]
    for bad in ("", "has space", "x" * 256, "é"):
        problem = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["r2"]}, expect=422,
                                 headers={"Idempotency-Key": bad.encode("utf-8").decode("latin-1")})
        assert [e["pointer"] for e in problem["errors"]] == ["Idempotency-Key"], bad
    assert await _count(api, "/deployments", "deployments") == 1


async def test_a_failed_request_is_not_recorded_and_the_key_works_once_fixed(api):
    flow = await api.published_flow(STEP_FLOW)
    await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["later"]}, expect=422,
                   headers=_key("fix-me"))
    await api.post("/devices", {"id": "later", "board": "unix-sim"}, expect=201)
    await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["later"]}, expect=201,
                   headers=_key("fix-me-2"))
    # the same body under the first key: nothing was recorded for it, so it is carried out now
    dep = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["later"]}, expect=201,
                         headers=_key("fix-me"))
    assert await _count(api, "/deployments", "deployments") == 2 and dep["total_targets"] == 1


async def test_an_answer_is_kept_a_day_then_the_key_is_free_again(api):
    db, box = api.app[DB], api.app[BOX]
    made = []

    def create():
        made.append(len(made))
        return {"n": made[-1]}

    t0 = 1_000_000.0
    first = db.call(idempotency.once, "scope", "k", "print", t0, box, create)
    replay = db.call(idempotency.once, "scope", "k", "print", t0 + idempotency.TTL_S - 1, box, create)
    assert first == {"n": 0} and replay == idempotency.Replay(201, json.dumps({"n": 0})) and made == [0]
    later = db.call(idempotency.once, "scope", "k", "print", t0 + idempotency.TTL_S + 1, box, create)
    assert later == {"n": 1} and db.call(IdempotentAnswer.select().count) == 1  # the expired answer is gone

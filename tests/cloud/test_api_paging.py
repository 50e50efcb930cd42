"""Cursor paging on every list, and fleets bigger than one SQL statement
may name (SQLite binds at most 32,766 variables a statement)."""

from __future__ import annotations

import time

from cloud.appkeys import BOX, DB
from cloud.db import insert_rows
from cloud.models import Device
from cloud.natural import natural_key
from cloud.store.runs import ingest

STEP_FLOW = {"name": "tiny", "steps": [{"node": "clear-cache", "params": {}}]}


async def _walk(api, path: str, name: str, limit: int = 2) -> list[dict]:
    """Every item of a list, `limit` a page, following `next`; checks that
    each page but the last is full."""
    sep = "&" if "?" in path else "?"
    body = await api.get(f"{path}{sep}limit={limit}")
    items = list(body[name])
    while body["next"]:
        assert len(body[name]) == limit
        assert body["next"].startswith("/api/v1/") and f"limit={limit}" in body["next"]
        body = await api.get(body["next"].removeprefix("/api/v1"))
        items += body[name]
    return items


def _key(item: dict):
    return item.get("id") or item.get("device_id") or item.get("run")


async def test_every_list_pages_with_limit_cursor_and_next(api):
    flow = await api.published_flow(STEP_FLOW)
    other = await api.published_flow(dict(STEP_FLOW, name="tiny-2"))
    await api.published_flow(dict(STEP_FLOW, name="tiny-3"))
    for i in range(5):
        await api.post("/devices", {"id": f"p{i}", "board": "unix-sim", "tags": ["pg"]}, expect=201)
    for _ in range(3):
        await api.post("/deployments", {"flow_id": flow["id"], "target_tags": ["pg"]}, expect=201)
        await api.post("/executions", {"flow_id": flow["id"], "target_tags": ["pg"]}, expect=201)
    pipeline = await api.post("/pipelines", {"name": "pl", "steps": [{"flow_id": flow["id"]}, {"flow_id": other["id"]}],
                                             "targets": {"target_tags": ["pg"]}}, expect=201)
    await api.post("/pipelines", {"name": "pl2", "steps": [{"flow_id": flow["id"]}, {"flow_id": other["id"]}],
                                  "targets": {"target_tags": ["pg"]}}, expect=201)
    await api.post("/pipelines", {"name": "pl3", "steps": [{"flow_id": flow["id"]}, {"flow_id": other["id"]}],
                                  "targets": {"target_tags": ["pg"]}}, expect=201)
    for _ in range(3):
        await api.post(f"/pipelines/{pipeline['id']}/runs", expect=201)
    now = time.time()
    api.app[DB].call(ingest, [("p0", {"dev": "p0", "dropped": 0, "runs": [
        {"run": n, "status": "completed", "nodes": []} for n in range(1, 6)]}, now)])
    dep = (await api.get("/deployments?limit=1"))["deployments"][0]
    await api.post(f"/deployments/{dep['id']}/start")  # events: start, status, each target's and each send
    exe = (await api.get("/executions?limit=1"))["executions"][0]
    lists = [("/devices", "devices"), ("/devices?tag=pg", "devices"), ("/flows", "flows"),
             ("/deployments", "deployments"), (f"/deployments/{dep['id']}/targets", "targets"),
             ("/executions", "executions"), (f"/executions/{exe['id']}/targets", "targets"),
             (f"/deployments/{dep['id']}/events", "events"),
             ("/pipelines", "pipelines"), (f"/pipelines/{pipeline['id']}/runs", "runs"), ("/devices/p0/runs", "runs")]
    for path, name in lists:
        whole = await api.get(path + ("&" if "?" in path else "?") + "limit=500")
        assert whole["next"] is None and len(whole[name]) >= 3, path
        walked = await _walk(api, path, name)
        assert [_key(i) for i in walked] == [_key(i) for i in whole[name]], path
    assert [r["run"] for r in (await api.get("/devices/p0/runs"))["runs"]] == [5, 4, 3, 2, 1]  # newest first
    deps = (await api.get("/deployments"))["deployments"]
    assert [d["created_at"] for d in deps] == sorted((d["created_at"] for d in deps), reverse=True)


async def test_a_cursor_holds_its_place_while_rows_are_added(api):
    for i in (1, 3, 5, 7):
        await api.post("/devices", {"id": f"c{i}", "board": "unix-sim"}, expect=201)
    first = await api.get("/devices?limit=2")
    assert [d["id"] for d in first["devices"]] == ["c1", "c3"]
    for i in (0, 2, 4, 8):  # before the cursor, behind it, after it
        await api.post("/devices", {"id": f"c{i}", "board": "unix-sim"}, expect=201)
    rest, link = [], first["next"]
    while link:
        body = await api.get(link.removeprefix("/api/v1"))
        rest, link = rest + [d["id"] for d in body["devices"]], body["next"]
    assert rest == ["c4", "c5", "c7", "c8"]  # nothing seen twice, nothing skipped


async def test_a_bad_cursor_or_limit_is_a_422_naming_it(api):
    await api.post("/devices", {"id": "b1", "board": "unix-sim"}, expect=201)
    await api.post("/devices", {"id": "b2", "board": "unix-sim"}, expect=201)
    devices_cursor = (await api.get("/devices?limit=1"))["next"].split("cursor=")[1]
    for path in ("/devices?cursor=garbage!", "/flows?cursor=bm90IGpzb24", f"/flows?cursor={devices_cursor}",
                 "/deployments?cursor=WyJkZXBsb3ltZW50cyIsMV0"):  # ["deployments",1]: the wrong shape
        problem = await api.get(path, expect=422)
        assert [e["pointer"] for e in problem["errors"]] == ["?cursor"], path
    for bad in ("0", "1001", "ten"):
        problem = await api.get(f"/devices?limit={bad}", expect=422)
        assert [e["pointer"] for e in problem["errors"]] == ["?limit"]
    assert [e["pointer"] for e in (await api.get("/devices/b1/runs?limit=501", expect=422))["errors"]] == ["?limit"]


async def test_a_deployment_over_more_targets_than_sqlite_binds_in_a_statement(api):
    """40,000 targets: created, started (a signed command each), counted,
    paged and cancelled, where one IN (...) or INSERT per deployment would
    fail with 'too many SQL variables'."""
    count = 40_000
    db, box = api.app[DB], api.app[BOX]
    sealed = box.seal(bytes(32))
    db.call(insert_rows, Device, [{"id": f"big{i:05d}", "natural_key": natural_key(f"big{i:05d}"), "board": "unix-sim",
                                   "tags": ["big"], "password_hash": "-", "key_sealed": sealed, "created_at": 0.0}
                                  for i in range(count)])
    flow = await api.published_flow(STEP_FLOW)
    dep = await api.post("/deployments", {"flow_id": flow["id"], "strategy": "all_at_once", "target_tags": ["big"]},
                         expect=201)
    assert dep["total_targets"] == count and dep["counts"]["pending"] == count
    assert "targets" not in dep and dep["targets_url"] == f"/api/v1/deployments/{dep['id']}/targets"
    started = await api.post(f"/deployments/{dep['id']}/start")
    assert started["counts"]["deploying"] == count
    page = await api.get(f"/deployments/{dep['id']}/targets?limit=1000&status=deploying")
    assert [t["device_id"] for t in page["targets"]][:2] == ["big00000", "big00001"] and len(page["targets"]) == 1000
    last = await api.get(f"/deployments/{dep['id']}/targets?limit=3&cursor="
                         + page["next"].split("cursor=")[1])
    assert [t["device_id"] for t in last["targets"]] == ["big01000", "big01001", "big01002"]
    cancelled = await api.post(f"/deployments/{dep['id']}/cancel")
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["skipped"] == count
    listed = (await api.get("/deployments"))["deployments"][0]
    assert (listed["id"], listed["total_targets"]) == (dep["id"], count)


async def test_an_execution_over_more_devices_than_a_request_may_name_is_replayed(api):
    """A replay names its devices itself: 10,001 of them, one more than a
    request's target_devices may list (schemas.MAX_TARGETS)."""
    from cloud.schemas import MAX_TARGETS

    count = MAX_TARGETS + 1
    db, box = api.app[DB], api.app[BOX]
    sealed = box.seal(bytes(32))
    db.call(insert_rows, Device, [{"id": f"ex{i:05d}", "natural_key": natural_key(f"ex{i:05d}"), "board": "unix-sim",
                                   "password_hash": "-", "key_sealed": sealed, "created_at": 0.0, "online": True} for i in range(count)])
    flow = await api.published_flow(STEP_FLOW)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    assert exe["total_targets"] == count and "targets" not in exe
    again = await api.post(f"/executions/{exe['id']}/replay", expect=201)
    assert (again["retry_of"], again["total_targets"]) == (exe["id"], count)
    first = (await api.get(f"/executions/{again['id']}/targets?limit=2"))["targets"]
    assert [t["device_id"] for t in first] == ["ex00000", "ex00001"]

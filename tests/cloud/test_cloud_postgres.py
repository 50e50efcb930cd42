"""The cloud on PostgreSQL (DESIGN: "PostgreSQL by URL"): a throwaway
cluster (initdb, pg_ctl; conftest.py's `postgres`) and the API through it.
Skipped when PostgreSQL's server programs or psycopg2 are missing. The
whole cloud suite runs on PostgreSQL with FLEETFLOW_TEST_DB_URL=postgresql://...
(conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(postgres, empty_postgres):  # postgres: the session's cluster (conftest.py)
    return empty_postgres(postgres)


async def test_a_rollout_end_to_end_on_postgresql(api):
    from shared_schema.messages import Ack

    from cloud.appkeys import DB, DRIVER
    from cloud.store import rollout

    flow = await api.published_flow()
    await api.post("/devices", {"id": "pg1", "board": "unix-sim", "environment": "prod"}, expect=201)
    await api.post("/devices", {"id": "pg2", "board": "esp32-devkitc", "environment": "prod"}, expect=201)
    dep = await api.post("/deployments", {"flow_id": flow["id"], "strategy": "all_at_once", "environment": "prod"},
                         expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    now = time.time()
    db = api.app[DB]
    db.call(rollout.mark_sent, [f"{dep['id']}.pg1.deploy"], now)
    # timestamps keep sub-second precision (a 4-byte REAL would not)
    assert db.call(rollout.stale_commands, now + 30.5, 30) != [] and db.call(rollout.stale_commands, now + 29.5, 30) == []
    for dev in ("pg1", "pg2"):
        api.app[DRIVER].on_ack(dev, Ack(id=f"{dep['id']}.{dev}.deploy", op="deploy", state="healthy"))
    for _ in range(200):
        got = await api.get(f"/deployments/{dep['id']}")
        if got["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert got["status"] == "completed" and got["completed_targets"] == 2
    assert {t["board"] for t in got["targets"]} == {"unix-sim", "esp32-devkitc"}  # compiled per board


async def test_run_records_and_versions_on_postgresql(api, seed_flow):
    from cloud.appkeys import DB
    from cloud.store.runs import ingest

    flow = await api.published_flow()
    restored = await api.post(f"/flows/{flow['id']}/versions/1/restore")  # publishes a copy as v2
    assert (restored["version"], restored["restored_from"]) == (2, 1)
    diff = await api.get(f"/flows/{flow['id']}/versions/compare?v1=1&v2=2")
    assert diff["same"]
    await api.post("/devices", {"id": "pg3", "board": "unix-sim"}, expect=201)
    batch = {"dev": "pg3", "dropped": 0, "runs": [{"run": 1, "status": "completed", "logs": [["info", "n1", "ok"]],
                                                   "nodes": [{"id": "n1", "type": "dht", "us": 9}]}]}
    assert api.app[DB].call(ingest, [("pg3", batch, time.time())]) == 1
    runs = (await api.get("/devices/pg3/runs"))["runs"]
    assert runs[0]["logs"] == [["info", "n1", "ok"]] and runs[0]["nodes"][0]["us"] == 9


async def test_accounts_on_postgresql(api):
    """Register, log in, refresh, a user made by the admin, and triggered_by
    with an email longer than the column's old 64 characters."""
    from cloud.appkeys import CONFIG

    api.app[CONFIG].password_cost = 4
    long_email = "a" * 70 + "@example.com"

    async def call(method, path, body=None, token=None, expect=200):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await api.client.request(method, "/api/v1" + path, json=body, headers=headers)
        assert resp.status == expect, await resp.text()
        return await resp.json(content_type=None) if resp.status != 204 else None

    admin = (await call("POST", "/auth/register", {"email": "ada@example.com", "password": "correct horse"},
                        expect=201))["access_token"]
    await call("POST", "/auth/register", {"email": "eve@example.com", "password": "x" * 10}, expect=403)
    await call("POST", "/users", {"email": long_email, "password": "y" * 10, "role": "operator"}, admin, 201)
    api.client.session.cookie_jar.clear()
    token = (await call("POST", "/auth/login", {"email": long_email, "password": "y" * 10}))["access_token"]
    token = (await call("POST", "/auth/refresh", token=token))["access_token"]
    flow = await api.published_flow({"name": "tidy", "steps": [{"node": "clear-cache", "params": {}}]})
    await api.post("/devices", {"id": "pgu", "board": "unix-sim"}, expect=201)
    pipe = await api.post("/pipelines", {"name": "p", "steps": [{"flow_id": flow["id"]}, {"flow_id": flow["id"]}],
                                         "targets": {"target_devices": ["pgu"]}}, expect=201)
    run = await call("POST", f"/pipelines/{pipe['id']}/runs", token=token, expect=201)
    assert run["triggered_by"] == f"user:{long_email}"
    step = await api.get(f"/executions/{run['steps_snapshot'][0]['execution_id']}")
    assert step["triggered_by"] == f"user:{long_email}"
    await call("POST", "/auth/logout", token=token, expect=204)
    await call("GET", "/flows", token=token, expect=401)

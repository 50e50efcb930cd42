"""The cloud on PostgreSQL (DESIGN: "PostgreSQL by URL"): a throwaway
cluster (initdb, pg_ctl) and the API through it. Skipped when PostgreSQL's
server programs or psycopg2 are missing. The whole cloud suite runs on
PostgreSQL with FLEETFLOW_TEST_DB_URL=postgresql://... (conftest.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("psycopg2")
if not (shutil.which("initdb") and shutil.which("pg_ctl")):
    pytest.skip("needs PostgreSQL's initdb and pg_ctl", allow_module_level=True)


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: drop to nobody for the throwaway cluster
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    root = tempfile.mkdtemp(prefix="ff-pg-", dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    subprocess.run(_as_postgres_user(["initdb", "-D", data, "-U", "ff", "--auth=trust"]), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres_user(["pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                                      f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        url = f"postgresql://ff@127.0.0.1:{port}/postgres"
        yield url
    finally:
        subprocess.run(_as_postgres_user(["pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db_url(postgres, empty_postgres):
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

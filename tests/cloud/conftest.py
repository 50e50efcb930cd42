"""Fixtures for the cloud: an app on a fresh SQLite file, keys for each role,
and a small client that checks statuses."""

from __future__ import annotations

import asyncio
import copy
import os

import pytest

from cloud.app import init_app
from cloud.appkeys import DB
from cloud.config import Config
from cloud.store import keys as key_store

# Seed 001's create-flow body as written, with the pins its nodes need named.
SEED_FLOW = {
    "name": "Temperature Alert",
    "description": "Monitor temperature and send alerts",
    "tags": ["temperature", "alerts"],
    "definition": {
        "nodes": [
            {"id": "n1", "type": "dht", "name": "DHT22 Sensor", "config": {"pin": 4}, "x": 100, "y": 200},
            {"id": "n2", "type": "switch", "name": "Threshold",
             "config": {"property": "temperature", "op": "gt", "value": "$threshold"}, "x": 300, "y": 200},
            {"id": "n3", "type": "mqtt_out", "name": "Alert", "config": {"topic": "alert"}, "x": 500, "y": 200},
        ],
        "connections": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}],
        "variables": [{"name": "threshold", "type": "number", "value": "30"}],
    },
}


def _seed_flow() -> dict:
    return copy.deepcopy(SEED_FLOW)


@pytest.fixture
def seed_flow():
    """A fresh copy of seed 001's flow body on each call."""
    return _seed_flow


class Api:
    def __init__(self, client, keys: dict[str, str]):
        self.client = client
        self.keys = keys
        self.app = client.server.app

    async def call(self, method: str, path: str, body=None, role: str | None = "admin", expect: int = 200,
                   headers: dict | None = None):
        hdrs = dict(headers or {})
        if role:
            hdrs["x-api-key"] = self.keys[role]
        kwargs = {"headers": hdrs}
        if body is not None:
            kwargs["json"] = body
        resp = await self.client.request(method, "/api/v1" + path, **kwargs)
        text = await resp.text()
        assert resp.status == expect, f"{method} {path}: {resp.status} {text}"
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json"
        return (await resp.json(content_type=None)) if text else None

    async def get(self, path, **kw):
        return await self.call("GET", path, **kw)

    async def post(self, path, body=None, **kw):
        return await self.call("POST", path, body, **kw)

    async def put(self, path, body=None, **kw):
        return await self.call("PUT", path, body, **kw)

    async def published_flow(self, body=None) -> dict:
        flow = await self.post("/flows", body or _seed_flow(), expect=201)
        return await self.post(f"/flows/{flow['id']}/publish")

    async def devices(self, count: int, board: str = "unix-sim", **fields) -> list[dict]:
        return [await self.post("/devices", {"board": board, **fields}, expect=201) for _ in range(count)]

    @staticmethod
    async def until(predicate, timeout_s: float = 5.0):
        """The first truthy answer of `await predicate()`, polled; fails the test after timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await predicate()
            if value:
                return value
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)


def _fresh_postgres(url: str) -> str:
    """An emptied PostgreSQL database (FLEETFLOW_TEST_DB_URL runs the API
    tests on PostgreSQL instead of SQLite)."""
    from cloud.db import open_database

    db = open_database(url)
    db.connect()
    db.execute_sql("DROP SCHEMA public CASCADE")
    db.execute_sql("CREATE SCHEMA public")
    db.close()
    return url


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster (tools/infra/pgcluster.py) for the session:
    its URL. Skips the test when PostgreSQL's server programs or psycopg2
    are missing."""
    from tools.infra.pgcluster import server_bin, throwaway_postgres

    pytest.importorskip("psycopg2")
    if server_bin() is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl")
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def empty_postgres():
    """The function that empties a PostgreSQL database and returns its URL."""
    return _fresh_postgres


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh database: SQLite in tmp_path, or FLEETFLOW_TEST_DB_URL emptied."""
    url = os.environ.get("FLEETFLOW_TEST_DB_URL")
    return _fresh_postgres(url) if url else str(tmp_path / "cloud.db")


@pytest.fixture
def cloud_config(db_url) -> Config:
    # rehearsals (cloud/rehearsal.py) run real MicroPython twins: the API
    # tests of everything else start deployments at once; test_rehearsal.py
    # and the fleet tests keep the default (on)
    return Config(db_url=db_url, mqtt_url=None, secret=b"s" * 32, engine_tick_s=0.05, rehearsal_default=False)


@pytest.fixture
async def api(aiohttp_client, cloud_config) -> Api:
    app = init_app(cloud_config)
    keys = {role: app[DB].call(key_store.create_key, role)["key"] for role in key_store.ROLES}
    return Api(await aiohttp_client(app), keys)


@pytest.fixture(params=["sqlite", "postgresql"])
def sqlite_then_postgres(request, tmp_path) -> str:
    """A fresh database of each kind in turn: a module that must hold on both
    (bad input, the bridge) returns it as its own `db_url`."""
    if request.param == "sqlite":
        return str(tmp_path / "cloud.db")
    return _fresh_postgres(request.getfixturevalue("postgres"))

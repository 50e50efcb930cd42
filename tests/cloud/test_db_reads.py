"""Reads beside writes (issue 10): a heavy write holds the database's writer
thread (a 100,000-target deployment made, a burst of run reports stored),
and the API's reads of collections are answered meanwhile, on SQLite (WAL)
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cloud.appkeys import DB
from cloud.store import keys as key_store


@pytest.fixture
def db_url(sqlite_then_postgres):
    return sqlite_then_postgres


async def test_lists_are_answered_while_a_heavy_write_holds_the_writer(api, seed_flow):
    flow = await api.published_flow()
    db = api.app[DB]
    writing, release = threading.Event(), threading.Event()

    def heavy_write():
        key_store.create_key("viewer")  # a write: the transaction holds the write lock
        writing.set()
        release.wait(20)  # as long as a heavy write takes

    held = asyncio.ensure_future(db.run(heavy_write))
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, writing.wait, 5)
        lists = {"/deployments": "deployments", "/devices": "devices", "/executions": "executions",
                 f"/flows/{flow['id']}/versions": "versions"}
        for path, key in lists.items():
            got = await asyncio.wait_for(api.get(path), 5)  # not behind the write (it waits 20 s)
            assert isinstance(got[key], list), (path, got)
        assert not held.done()  # the write was still running all along
        flows = await asyncio.wait_for(api.get("/flows"), 5)
        assert [f["id"] for f in flows["flows"]] == [flow["id"]]  # the last commit, read beside the write
    finally:
        release.set()
        await held

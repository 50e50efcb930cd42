"""The device list (issue 12, fleet): search, filters, natural sort and
cursor paging, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from cloud.appkeys import DB
from cloud.store import devices as store

IDS = ["node-10", "node-2", "Node-3", "node-1", "node-9", "x", "a_b", "axb"]


@pytest.fixture
def db_url(sqlite_then_postgres):
    return sqlite_then_postgres


async def _fleet(api):
    for i, dev_id in enumerate(IDS):
        await api.post("/devices", {"id": dev_id, "board": "esp32-devkitc" if i % 2 else "unix-sim",
                                    "name": f"Pump {dev_id.upper()}" if dev_id.lower().startswith("node") else "",
                                    "tags": ["even"] if i % 2 == 0 else [], "environment": "prod" if i < 4 else ""},
                       expect=201)
    db = api.app[DB]
    # what the bridge stores when a device reports (cloud.bridge -> record_status)
    db.call(store.record_status, "node-2", {"state": "online", "flow": "pump", "ver": 2, "trial": True}, 300.0)
    db.call(store.record_status, "node-10", {"state": "online", "flow": "pump", "ver": 1}, 100.0)
    db.call(store.record_status, "x", {"state": "online", "flow": "other", "ver": 2}, 200.0)
    db.call(store.record_status, "x", {"state": "offline"}, 250.0)


async def _ids(api, query: str) -> list[str]:
    return [d["id"] for d in (await api.get("/devices" + query, role="viewer"))["devices"]]


async def test_ids_sort_naturally_and_every_page_follows_next(api):
    await _fleet(api)
    natural = ["a_b", "axb", "node-1", "node-2", "Node-3", "node-9", "node-10", "x"]
    assert await _ids(api, "") == natural == await _ids(api, "?sort=id")
    assert await _ids(api, "?sort=-id") == natural[::-1]
    seen, url = [], "/devices?sort=id&limit=3"
    while url:
        page = await api.get(url.removeprefix("/api/v1"))
        assert len(page["devices"]) <= 3
        seen += [d["id"] for d in page["devices"]]
        url = page["next"]
        assert url is None or "sort=id" in url
    assert seen == natural
    assert await _ids(api, "?sort=name") == ["a_b", "axb", "x", "node-1", "node-10", "node-2", "Node-3", "node-9"]


async def test_last_seen_sorts_with_never_seen_devices_last_when_newest_first(api):
    await _fleet(api)
    newest = await _ids(api, "?sort=-last_seen&limit=2")
    assert newest == ["node-2", "x"]
    order = await _ids(api, "?sort=-last_seen")
    assert order == ["node-2", "x", "node-10", "node-9", "Node-3", "node-1", "axb", "a_b"]
    paged, url = [], "/devices?sort=-last_seen&limit=3"
    while url:
        page = await api.get(url.removeprefix("/api/v1"))
        paged += [d["id"] for d in page["devices"]]
        url = page["next"]
    assert paged == order
    assert (await _ids(api, "?sort=last_seen"))[-3:] == ["node-10", "x", "node-2"]
    doc = (await api.get("/devices?sort=-last_seen&limit=1"))["devices"][0]
    assert doc["name"] == "Pump NODE-2" and doc["last_seen"].startswith("1970-01-01T00:05:00")


async def test_search_and_filters(api):
    await _fleet(api)
    assert await _ids(api, "?q=PUMP%20node-1") == ["node-1", "node-10"]  # the name, any case
    assert await _ids(api, "?q=ode-") == ["node-1", "node-2", "Node-3", "node-9", "node-10"]
    assert await _ids(api, "?q=_") == ["a_b"]  # a wildcard in SQL, a plain character here
    assert await _ids(api, "?q=%25") == []
    assert await _ids(api, "?board=esp32-devkitc") == ["axb", "node-1", "node-2", "x"]
    assert await _ids(api, "?tag=even") == ["a_b", "Node-3", "node-9", "node-10"]
    assert await _ids(api, "?environment=prod") == ["node-1", "node-2", "Node-3", "node-10"]
    assert await _ids(api, "?online=true") == ["node-2", "node-10"]
    assert await _ids(api, "?online=false&q=x") == ["axb", "x"]
    assert await _ids(api, "?flow=pump") == ["node-2", "node-10"]
    assert await _ids(api, "?flow=pump&version=2") == ["node-2"]
    assert await _ids(api, "?version=2") == ["node-2", "x"]  # x reported version 2 of another flow, then went offline
    assert await _ids(api, "?trial=true") == ["node-2"]
    assert await _ids(api, "?online=&trial=&q=") == await _ids(api, "")  # a form's empty fields: any


async def test_bad_list_parameters_are_422_naming_them(api):
    await _fleet(api)
    for query, pointer in [("?sort=age", "?sort"), ("?version=two", "?version"), ("?online=maybe", "?online"),
                           ("?trial=2", "?trial"), ("?limit=0", "?limit")]:
        problem = await api.get("/devices" + query, expect=422)
        assert [p["pointer"] for p in problem["errors"]] == [pointer], query
    by_name = await api.get("/devices?sort=name&limit=1")
    cursor = by_name["next"].split("cursor=")[1]
    problem = await api.get(f"/devices?sort=-last_seen&cursor={cursor}", expect=422)
    assert problem["errors"][0]["pointer"] == "?cursor"

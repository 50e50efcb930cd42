"""Every list the API serves pages by `next` (issue 12: the dashboard reads
them page by page): versions, keys, webhooks and their deliveries, and a
device's deployments."""

from __future__ import annotations

from cloud.appkeys import DB
from cloud.store import webhooks as webhook_store


async def _all(api, path: str, key: str, limit: int = 2) -> list[dict]:
    """Every item, `limit` a page, checking no page is longer."""
    items, url = [], f"{path}{'&' if '?' in path else '?'}limit={limit}"
    while url:
        page = await api.get(url.removeprefix("/api/v1"))
        assert len(page[key]) <= limit
        items += page[key]
        url = page["next"]
    return items


async def test_versions_keys_and_webhooks_page(api):
    flow = await api.published_flow()
    for _ in range(2):  # a restore publishes a copy as the next version
        await api.post(f"/flows/{flow['id']}/versions/1/restore")
    assert [v["version"] for v in await _all(api, f"/flows/{flow['id']}/versions", "versions")] == [1, 2, 3]
    assert [k["role"] for k in await _all(api, "/keys", "keys")] == ["admin", "operator", "viewer"]
    for port in (1, 2, 3):
        await api.post("/webhooks", {"url": f"http://127.0.0.1:{port}/hook", "events": ["*"]}, expect=201)
    hooks = await _all(api, "/webhooks", "webhooks")
    assert [h["url"] for h in hooks] == [f"http://127.0.0.1:{p}/hook" for p in (1, 2, 3)]


async def test_deliveries_page_newest_first_with_the_status_filter_kept(api):
    hook = await api.post("/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"]}, expect=201)
    for i in range(5):
        api.app[DB].call(webhook_store.emit, f"test.e{i}", {"i": i}, 1000.0 + i)
    got = await _all(api, f"/webhooks/{hook['id']}/deliveries?status=pending", "deliveries")
    assert [d["event"] for d in got] == [f"test.e{i}" for i in (4, 3, 2, 1, 0)]  # none lost past a cap
    first = await api.get(f"/webhooks/{hook['id']}/deliveries?status=pending&limit=2")
    assert "status=pending" in first["next"] and first["webhook_id"] == hook["id"]
    assert (await api.get(f"/webhooks/{hook['id']}/deliveries?status=dead"))["deliveries"] == []


async def test_a_devices_deployments(api):
    flow = await api.published_flow()
    for dev in ("d1", "d2"):
        await api.post("/devices", {"id": dev, "board": "unix-sim"}, expect=201)
    both = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["d1", "d2"]}, expect=201)
    only_d2 = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["d2"]}, expect=201)
    assert [d["id"] for d in await _all(api, "/deployments?device_id=d2", "deployments", 1)] == [only_d2["id"], both["id"]]
    assert [d["id"] for d in (await api.get("/deployments?device_id=d1"))["deployments"]] == [both["id"]]
    assert (await api.get("/deployments?device_id=nobody"))["deployments"] == []

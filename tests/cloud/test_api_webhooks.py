"""Webhooks: signed, retried with backoff, dead letters kept and redelivered."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest
from aiohttp import web

from cloud.app import init_app
from cloud.appkeys import DB
from cloud.store import keys as key_store


@pytest.fixture
async def hooks_api(aiohttp_client, aiohttp_server, cloud_config):
    """A cloud with fast retries, and a real HTTP receiver that fails twice first."""
    received, state = [], {"fail": 2}

    async def receiver(request):
        body = await request.read()
        if state["fail"]:
            state["fail"] -= 1
            return web.Response(status=503)
        received.append((dict(request.headers), body))
        return web.Response(status=204)

    hook_app = web.Application()
    hook_app.router.add_post("/hook", receiver)
    server = await aiohttp_server(hook_app)
    cloud_config.webhook_poll_s, cloud_config.webhook_backoff_s, cloud_config.webhook_max_attempts = 0.05, 0.05, 3
    app = init_app(cloud_config)
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)
    return client, {"x-api-key": key}, server, received


async def _wait(fn, timeout_s=5.0):
    for _ in range(int(timeout_s / 0.05)):
        got = await fn()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("not reached")


async def test_events_are_signed_and_retried_until_delivered(hooks_api, seed_flow):
    client, headers, server, received = hooks_api
    resp = await client.post("/api/v1/webhooks", json={"url": str(server.make_url("/hook")),
                                                       "events": ["deployment."]}, headers=headers)
    hook = await resp.json()
    assert resp.status == 201 and len(hook["secret"]) >= 16
    flow = await (await client.post("/api/v1/flows", json=seed_flow(), headers=headers)).json()
    await client.post(f"/api/v1/flows/{flow['id']}/publish", headers=headers)
    await client.post("/api/v1/devices", json={"id": "w1", "board": "unix-sim"}, headers=headers)
    dep = await (await client.post("/api/v1/deployments", json={"flow_id": flow["id"], "target_devices": ["w1"]},
                                   headers=headers)).json()
    await client.post(f"/api/v1/deployments/{dep['id']}/cancel", headers=headers)

    async def delivered():
        return received or None
    hdrs, body = (await _wait(delivered))[0]
    expected = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert hdrs["X-Fleetflow-Signature"] == expected and hdrs["X-Fleetflow-Event"] == "deployment.cancelled"
    assert json.loads(body)["data"]["id"] == dep["id"]
    listed = await (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=headers)).json()
    assert [(d["status"], d["attempts"]) for d in listed["deliveries"]] == [("delivered", 3)]


async def test_undeliverable_events_become_dead_letters_and_can_be_redelivered(hooks_api, seed_flow):
    client, headers, server, received = hooks_api
    hook = await (await client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/nowhere"},
                                    headers=headers)).json()
    flow = await (await client.post("/api/v1/flows", json=seed_flow(), headers=headers)).json()
    await client.post(f"/api/v1/flows/{flow['id']}/publish", headers=headers)
    await client.post("/api/v1/devices", json={"id": "w2", "board": "unix-sim"}, headers=headers)
    dep = await (await client.post("/api/v1/deployments", json={"flow_id": flow["id"], "target_devices": ["w2"]},
                                   headers=headers)).json()
    await client.post(f"/api/v1/deployments/{dep['id']}/cancel", headers=headers)

    async def dead():
        got = await (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries?status=dead",
                                      headers=headers)).json()
        return got["deliveries"] or None
    letter = (await _wait(dead))[0]
    assert letter["attempts"] == 3 and letter["last_error"]
    again = await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{letter['id']}/redeliver", headers=headers)
    assert again.status == 200 and (await again.json())["status"] == "pending"
    resp = await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{letter['id']}/redeliver", headers=headers)
    assert resp.status == 409


async def test_webhooks_are_admin_only(api):
    await api.post("/webhooks", {"url": "http://example.invalid/h"}, role="operator", expect=403)
    await api.post("/webhooks", {"url": "ftp://x"}, expect=422)
    made = await api.post("/webhooks", {"url": "http://example.invalid/h", "events": ["execution.failed"]},
                          expect=201)
    assert [w["id"] for w in (await api.get("/webhooks"))["webhooks"]] == [made["id"]]
    await api.call("DELETE", f"/webhooks/{made['id']}", expect=204)
    await api.get(f"/webhooks/{made['id']}/deliveries", expect=404)


async def test_an_event_name_that_can_never_match_is_refused(api):
    events = ["deployment.", "deployment.complete", "*", "deploy.", "execution.timed_out", "pipeline_run.running"]
    problem = await api.post("/webhooks", {"url": "http://example.invalid/h", "events": events}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/events/1", "/events/3", "/events/5"]
    assert "deployment.completed" in problem["errors"][0]["message"]
    for events in (["*"], ["deployment."], ["deployment.rolled_back", "pipeline_run.failed", "execution."]):
        await api.post("/webhooks", {"url": "http://example.invalid/h", "events": events}, expect=201)

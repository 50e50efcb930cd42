"""Webhooks: signed as Standard Webhooks, retried with backoff, dead letters kept and redelivered."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from cloud.app import init_app
from cloud.appkeys import DB
from cloud.store import keys as key_store


@pytest.fixture
async def hooks_api(aiohttp_client, aiohttp_server, cloud_config):
    """A cloud with fast retries, and a real HTTP receiver that fails twice first."""
    received, state = [], {"fail": 2, "ids": []}

    async def receiver(request):
        body = await request.read()
        state["ids"].append(request.headers.get("webhook-id"))
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
    server.attempt_ids = state["ids"]
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
    assert resp.status == 201 and hook["secret"].startswith("whsec_")
    flow = await (await client.post("/api/v1/flows", json=seed_flow(), headers=headers)).json()
    await client.post(f"/api/v1/flows/{flow['id']}/publish", headers=headers)
    await client.post("/api/v1/devices", json={"id": "w1", "board": "unix-sim"}, headers=headers)
    dep = await (await client.post("/api/v1/deployments", json={"flow_id": flow["id"], "target_devices": ["w1"]},
                                   headers=headers)).json()
    await client.post(f"/api/v1/deployments/{dep['id']}/cancel", headers=headers)

    async def delivered():
        return received or None
    hdrs, body = (await _wait(delivered))[0]
    # verified as a receiver would, with the Standard Webhooks library and the secret shown once
    assert Webhook(hook["secret"]).verify(body, hdrs)["data"]["id"] == dep["id"]
    assert hdrs["X-Fleetflow-Event"] == "deployment.cancelled"
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(body.replace(b"cancelled", b"completed"), hdrs)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(body, hdrs)  # another secret
    # one message id across the retries, so a receiver can drop duplicates
    assert server.attempt_ids == [hdrs["webhook-id"]] * 3 and hdrs["webhook-id"].startswith("msg_")
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


async def test_a_given_secret_must_be_a_standard_webhooks_secret(api):
    url = "http://example.invalid/h"
    for secret, why in (("0123456789abcdef0123", "'whsec_' then base64"), ("whsec_not*base64*at*all", "not base64"),
                        ("whsec_" + "QUJD" * 4, "12 bytes")):
        problem = await api.post("/webhooks", {"url": url, "secret": secret}, expect=422)
        assert problem["errors"][0]["pointer"] == "/secret" and why in problem["errors"][0]["message"], problem
    good = "whsec_" + "QUJD" * 8  # 24 bytes
    assert (await api.post("/webhooks", {"url": url, "secret": good}, expect=201))["secret"] == good


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


def test_secrets_made_before_standard_webhooks_still_sign_with_their_bytes():
    from cloud.store.webhooks import signing_key

    assert signing_key(b"whsec_" + b"QUJD" * 8) == b"ABC" * 8
    assert signing_key(b"9f2c0e5ad1b7443f") == b"9f2c0e5ad1b7443f"  # a hex secret from before: unchanged

"""No bad input gives a 500: every documented route with a body gets every
top-level field replaced by values of every JSON type."""

from __future__ import annotations

import pytest

from cloud.routes import API, ROUTES

WEIRD = [None, 0, -1, 1.5, 10**23, True, "", "x" * 300, "$nope", [], [1, "a", None], {}, {"a": {"b": []}}]


def _bodies(route):
    fields = list(route.body.model_json_schema().get("properties", {})) + ["unknown_field"]
    for field in fields:
        for value in WEIRD:
            yield {field: value}
    for value in WEIRD:  # not even an object
        yield value


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body is not None],
                         ids=lambda r: f"{r.method} {r.path}")
async def test_every_body_field_with_every_json_type(api, seed_flow, route):
    flow = await api.published_flow()
    path = (route.path.replace("{flow_id}", flow["id"]).replace("{device_id}", "nope")
            .replace("{deployment_id}", "dep_nope").replace("{pipeline_id}", "pl_nope"))
    for body in _bodies(route):
        resp = await api.client.request(route.method, API + path, json=body,
                                         headers={"x-api-key": api.keys["admin"]})
        assert resp.status < 500, (route.method, path, body, await resp.text())
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json"


async def test_publishing_drafts_with_weird_node_fields_never_500s(api, seed_flow):
    cases = []
    for node in range(3):
        for field in ("id", "type", "config", "name", "x"):
            for value in WEIRD:
                body = seed_flow()
                body["definition"]["nodes"][node][field] = value
                cases.append(body)
        for value in WEIRD:
            body = seed_flow()
            body["definition"]["nodes"][node]["config"] = {"pin": value, "value": value, "topic": value}
            cases.append(body)
    for value in WEIRD:
        body = seed_flow()
        body["definition"]["connections"][0]["port"] = value
        body["definition"]["variables"][0]["value"] = value
        cases.append(body)
    headers = {"x-api-key": api.keys["admin"]}
    for body in cases:
        resp = await api.client.post(API + "/flows", json=body, headers=headers)
        assert resp.status in (201, 422), (body, await resp.text())
        if resp.status == 201:
            flow = await resp.json()
            resp = await api.client.post(f"{API}/flows/{flow['id']}/publish", headers=headers)
            assert resp.status in (200, 422), (body, await resp.text())


@pytest.mark.parametrize("path, name", [
    ("/flows?status=publishd", "status"), ("/deployments?status=runing", "status"),
    ("/executions?status=done", "status"), ("/executions/exe_nope?level=loud", "level"),
])
async def test_a_misspelt_filter_is_422_naming_the_choices_not_an_empty_list(api, path, name):
    problem = await api.get(path, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == [f"?{name}"]
    assert "is not one of" in problem["errors"][0]["message"]


async def test_a_misspelt_delivery_status_is_422(api):
    hook = await api.post("/webhooks", {"url": "http://127.0.0.1:9/hook"}, expect=201)
    problem = await api.get(f"/webhooks/{hook['id']}/deliveries?status=failed", expect=422)
    assert problem["errors"] == [{"pointer": "?status", "message": "'failed' is not one of pending, delivered, dead"}]
    for status in ("pending", "delivered", "dead"):
        assert (await api.get(f"/webhooks/{hook['id']}/deliveries?status={status}"))["deliveries"] == []


HUGE = 10**23  # past a 64-bit database column


async def test_numbers_too_big_for_the_database_are_422_not_500(api):
    flow = await api.published_flow()
    await api.post("/devices", {"id": "h1", "board": "unix-sim"}, expect=201)
    hook = await api.post("/webhooks", {"url": "http://127.0.0.1:9/hook"}, expect=201)
    for path, pointer in [(f"/flows/{flow['id']}/versions/{HUGE}", "{version}"),
                          (f"/flows/{flow['id']}/versions/compare?v1=1&v2={HUGE}", "?v2"),
                          (f"/webhooks/{hook['id']}/deliveries/{HUGE}/redeliver", "{delivery_id}"),
                          (f"/keys/{HUGE}/revoke", "{key_id}")]:
        method = "POST" if path.endswith(("revoke", "redeliver")) else "GET"
        problem = await api.call(method, path, expect=422)
        assert [e["pointer"] for e in problem["errors"]] == [pointer], path
    for route in ("/deployments", "/executions"):
        problem = await api.post(route, {"flow_id": flow["id"], "version": HUGE, "target_devices": ["h1"]}, expect=422)
        assert [e["pointer"] for e in problem["errors"]] == ["/version"], route

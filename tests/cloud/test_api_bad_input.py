"""No bad input gives a 500: every documented route with a body gets every
top-level field replaced by values of every JSON type, and text no database
stores (NUL, lone surrogates) anywhere in a request is a 422 naming where.
Every test here runs on SQLite and on PostgreSQL (which refuses NUL in text
where SQLite would store it)."""

from __future__ import annotations

import pytest

from cloud.routes import API, ROUTES
from cloud.schemas import MAX_TARGETS

NUL = "a\x00b"
SURROGATE = "a\ud800b"
WEIRD = [None, 0, -1, 1.5, 10**23, True, "", "x" * 300, "$nope", NUL, SURROGATE, [], [1, "a", None], [NUL], {},
         {"a": {"b": []}}, {"k": NUL}]


@pytest.fixture
def db_url(sqlite_then_postgres):
    return sqlite_then_postgres


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


@pytest.mark.parametrize("raw", ["\u00b3", "\u0661", " 5", "5 ", "+5", "-5", "1_0", "1e3", "0x10", "5.0", "", "9" * 5000])
async def test_integer_parameters_take_ascii_digits_only(api, raw):
    flow = await api.published_flow()
    await api.post("/devices", {"id": "i1", "board": "unix-sim"}, expect=201)
    hook = await api.post("/webhooks", {"url": "http://127.0.0.1:9/hook"}, expect=201)
    for path, pointer in [("/devices/i1/runs?limit={}", "?limit"),
                          (f"/flows/{flow['id']}/versions/compare?v1=1&v2={{}}", "?v2"),
                          (f"/flows/{flow['id']}/versions/{{}}", "{version}"),
                          (f"/webhooks/{hook['id']}/deliveries/{{}}/redeliver", "{delivery_id}"),
                          ("/keys/{}/revoke", "{key_id}")]:
        if not raw and "?" not in path:
            continue  # an empty path segment is another route (a 404 or 405), not a bad number
        method = "POST" if path.endswith(("revoke", "redeliver")) else "GET"
        resp = await api.client.request(method, API + path.format(raw), headers={"x-api-key": api.keys["admin"]})
        problem = await resp.json(content_type=None)
        assert resp.status == 422, (path, raw, problem)
        assert [e["pointer"] for e in problem["errors"]] == [pointer], (path, raw)
        assert "whole number" in problem["errors"][0]["message"]


async def test_integer_parameters_in_range_still_work(api):
    await api.post("/devices", {"id": "i2", "board": "unix-sim"}, expect=201)
    assert (await api.get("/devices/i2/runs?limit=500"))["runs"] == []
    problem = await api.get("/devices/i2/runs?limit=501", expect=422)
    assert problem["errors"] == [{"pointer": "?limit", "message": "must be from 1 to 500"}]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_text_no_database_stores_is_422_with_the_pointer(api, seed_flow, bad):
    flow = await api.published_flow()
    await api.post("/devices", {"id": "t1", "board": "unix-sim"}, expect=201)
    cases = [("POST", "/flows", {**seed_flow(), "name": bad}, "/name"),
             ("POST", "/flows", {**seed_flow(), "description": bad}, "/description"),
             ("POST", "/flows", {**seed_flow(), "tags": ["ok", bad]}, "/tags/1"),
             ("POST", "/flows", {**seed_flow(), "a/b~": bad}, "/a~1b~0"),
             ("PUT", f"/flows/{flow['id']}", {"name": "x", "description": bad}, "/description"),
             ("POST", "/devices", {"board": "unix-sim", "name": bad}, "/name"),
             ("POST", "/devices", {"board": "unix-sim", "tags": [bad]}, "/tags/0"),
             ("PATCH", "/devices/t1", {"environment": bad}, "/environment"),
             ("POST", "/deployments", {"flow_id": flow["id"], "target_devices": ["t1", bad]}, "/target_devices/1"),
             ("POST", "/executions", {"flow_id": flow["id"], "target_tags": [bad]}, "/target_tags/0"),
             ("POST", "/keys", {"role": "viewer", "name": bad}, "/name"),
             ("POST", "/pipelines", {"name": bad, "steps": [{"flow_id": flow["id"]}] * 2}, "/name")]
    for method, path, body, pointer in cases:
        problem = await api.call(method, path, body, expect=422)
        assert [e["pointer"] for e in problem["errors"]] == [pointer], (method, path, body)
    # a NUL in a key names the object that holds the key
    problem = await api.post("/flows", {**seed_flow(), bad: 1}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == [""]
    assert problem["errors"][0]["message"].startswith("a key contains")


@pytest.mark.parametrize("path, pointer", [
    ("/devices/a%00b", "{device_id}"), ("/devices/a%00b/runs", "{device_id}"), ("/flows/f%00", "{flow_id}"),
    ("/deployments/dep%00/events", "{deployment_id}"), ("/executions/exe%00", "{execution_id}"),
    ("/pipelines/pl%00/runs/r%00", "{pipeline_id}"), ("/devices?tag=a%00", "?tag"), ("/flows?tag=%00", "?tag"),
    ("/deployments?flow_id=x%00", "?flow_id")])
async def test_nul_in_a_path_id_or_query_is_422_naming_it(api, path, pointer):
    problem = await api.get(path, expect=422)
    assert pointer in [e["pointer"] for e in problem["errors"]]
    assert all("NUL" in e["message"] for e in problem["errors"])


async def test_target_lists_are_deduplicated_and_capped(api):
    flow = await api.published_flow()
    await api.post("/devices", {"id": "d1", "board": "unix-sim"}, expect=201)
    await api.post("/devices", {"id": "d2", "board": "unix-sim"}, expect=201)
    # Past the cap: refused by the schema before the database sees it.
    problem = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["d1"] * 50_000}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/target_devices"]
    assert str(MAX_TARGETS) in problem["errors"][0]["message"]
    # Within it, duplicates count once, for deployments and executions alike.
    many = ["d1", "d2"] * (MAX_TARGETS // 2)
    dep = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": many}, expect=201)
    assert [t["device_id"] for t in dep["targets"]] == ["d1", "d2"]
    assert dep["targets_selector"]["target_devices"] == ["d1", "d2"]
    exe = await api.post("/executions", {"flow_id": flow["id"], "target_devices": many}, expect=201)
    assert [t["device_id"] for t in exe["targets"]] == ["d1", "d2"]
    # An unknown id among duplicates is named at its first position.
    problem = await api.post("/deployments", {"flow_id": flow["id"], "target_devices": ["d1"] * 3 + ["zz"] * 3},
                             expect=422)
    assert problem["errors"] == [{"pointer": "/target_devices/3", "message": "no device 'zz'"}]

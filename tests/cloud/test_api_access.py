"""API keys, roles, errors and the OpenAPI document."""

from __future__ import annotations

import pytest

from cloud.routes import API


async def test_no_key_is_401(api):
    problem = await api.get("/flows", role=None, expect=401)
    assert problem["status"] == 401 and "x-api-key" in problem["detail"]


async def test_an_unknown_key_is_401(api):
    await api.get("/flows", role=None, headers={"x-api-key": "ffk_nope"}, expect=401)


async def test_bearer_tokens_work_like_x_api_key(api):
    await api.get("/flows", role=None, headers={"Authorization": f"Bearer {api.keys['viewer']}"})


@pytest.mark.parametrize("role, expect", [("viewer", 403), ("operator", 201), ("admin", 201)])
async def test_viewers_read_only(api, seed_flow, role, expect):
    await api.post("/flows", seed_flow(), role=role, expect=expect)
    await api.get("/flows", role=role)


@pytest.mark.parametrize("role, expect", [("viewer", 403), ("operator", 403), ("admin", 201)])
async def test_only_admins_manage_keys(api, role, expect):
    await api.post("/keys", {"role": "viewer"}, role=role, expect=expect)


async def test_a_created_key_works_and_a_revoked_one_stops(api, monkeypatch):
    from cloud import middleware

    monkeypatch.setattr(middleware, "KEY_CACHE_S", 0)
    made = await api.post("/keys", {"role": "viewer", "name": "ci"}, expect=201)
    headers = {"x-api-key": made["key"]}
    await api.get("/flows", role=None, headers=headers)
    listed = (await api.get("/keys"))["keys"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    await api.post(f"/keys/{made['id']}/revoke")
    await api.get("/flows", role=None, headers=headers, expect=401)


async def test_bad_input_never_gives_500(api):
    for method, path, body in [
        ("POST", "/flows", {"name": 5}), ("POST", "/flows", {"definition": []}), ("PUT", "/flows/x", {}),
        ("POST", "/devices", {"board": 7}), ("POST", "/devices", {"board": "nope"}),
        ("POST", "/deployments", {"flow_id": 1}), ("POST", "/deployments", {"flow_id": "x", "strategy": "yolo"}),
        ("POST", "/keys", {"role": "root"}), ("GET", "/flows/x/versions/abc", None),
        ("POST", "/deployments/nope/start", None), ("PATCH", "/devices/nope", {"tags": "x"}),
    ]:
        resp = await api.client.request(method, API + path, json=body, headers={"x-api-key": api.keys["admin"]})
        assert resp.status in (400, 404, 409, 422), (method, path, resp.status, await resp.text())
        assert resp.content_type == "application/problem+json"


async def test_openapi_lists_every_route(api):
    doc = await api.get("/openapi.json", role=None)
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith(API) and route.method != "HEAD":
            served.add((path, route.method))
    assert served and served <= documented
    assert documented <= served | {(p, "HEAD") for p, _ in documented}
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))  # OpenAPI: each operationId names one operation
    create_flow = doc["paths"][API + "/flows"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"name", "definition", "steps", "boards"} <= set(create_flow["properties"])

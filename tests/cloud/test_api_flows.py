"""Flows and versions through the HTTP API."""

from __future__ import annotations

import json

import pytest


async def test_seed_001_create_flow_works_as_written(api, seed_flow):
    flow = await api.post("/flows", seed_flow(), expect=201)
    assert flow["id"].startswith("flow_") and flow["status"] == "draft" and flow["version"] is None
    assert flow["definition"]["nodes"][0]["name"] == "DHT22 Sensor"
    listed = await api.get("/flows")
    assert [f["id"] for f in listed["flows"]] == [flow["id"]]
    published = await api.post(f"/flows/{flow['id']}/publish")
    assert (published["status"], published["version"]) == ("published", 1)


async def test_a_draft_may_be_incomplete_but_publishing_reports_every_problem(api, seed_flow):
    body = seed_flow()
    body["definition"]["nodes"][0]["config"] = {}
    body["definition"]["nodes"][1]["type"] = "swtich"
    body["definition"]["connections"].append({"source": "n3", "target": "n9"})
    flow = await api.post("/flows", body, expect=201)
    problem = await api.post(f"/flows/{flow['id']}/publish", expect=422)
    pointers = {e["pointer"] for e in problem["errors"]}
    assert "/definition/nodes/0/config/pin" in pointers
    assert "/definition/nodes/1/type" in pointers
    assert any(p.startswith("/definition/connections/2") for p in pointers)
    assert (await api.get(f"/flows/{flow['id']}"))["status"] == "draft"


async def test_publish_checks_the_declared_boards(api, seed_flow):
    body = seed_flow()
    body["definition"]["nodes"][0]["config"]["pin"] = 35  # ESP32 input-only: fine for a DHT read
    body["boards"] = ["esp32-devkitc"]
    flow = await api.post("/flows", body, expect=201)
    ok = await api.post(f"/flows/{flow['id']}/publish")
    versions = await api.get(f"/flows/{flow['id']}/versions")
    assert ok["version"] == 1 and versions["versions"][0]["boards"] == ["esp32-devkitc"]
    body["definition"]["nodes"][0]["config"]["pin"] = 24  # no GPIO 24 on an ESP32
    flow2 = await api.post("/flows", body, expect=201)
    problem = await api.post(f"/flows/{flow2['id']}/publish", expect=422)
    assert problem["errors"][0]["pointer"] == "/definition/nodes/0/config/pin"
    assert problem["errors"][0]["boards"] == ["esp32-devkitc"]


async def test_without_declared_boards_a_version_records_the_boards_it_fits(api, seed_flow):
    body = seed_flow()
    body["definition"]["nodes"][0]["config"]["pin"] = 34  # ESP32-style pin map only
    flow = await api.published_flow(body)
    version = (await api.get(f"/flows/{flow['id']}/versions"))["versions"][0]
    assert "esp32-devkitc" in version["boards"] and "rp2-pico-w" not in version["boards"]


async def test_shape_errors_point_at_the_field(api):
    problem = await api.post("/flows", {"name": "", "definition": {"nodes": "x"}, "boards": ["esp32"]}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/name", "/definition/nodes"]  # every problem at once
    problem = await api.post("/flows", {"name": "x", "definition": {"nodes": "x"}}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/definition/nodes"]
    problem = await api.post("/flows", {"name": "x", "definition": {"nodes": []}, "boards": ["esp32", "unix-sim"]},
                             expect=422)
    assert problem["errors"] == [{"pointer": "/boards/0",
                                  "message": "unknown board 'esp32'; boards: esp32-devkitc, rp2-pico-w, unix-sim"}]
    draft = await api.post("/flows", {"name": "x"}, expect=201)
    problem = await api.put(f"/flows/{draft['id']}", {"name": "", "steps": "x", "boards": ["nope"]}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/name", "/steps"]
    problem = await api.put(f"/flows/{draft['id']}", {"boards": ["nope"]}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/boards/0"]


async def test_only_drafts_change(api):
    flow = await api.published_flow()
    await api.put(f"/flows/{flow['id']}", {"name": "renamed"}, expect=409)
    await api.post(f"/flows/{flow['id']}/publish", expect=409)


async def _two_versions(api, seed_flow) -> str:
    """A published flow with versions [1, 2]; v2 adds a log node n4."""
    fid = (await api.published_flow())["id"]
    await api.post(f"/flows/{fid}/versions/1/restore", {"publish": False})
    body = seed_flow()
    body["definition"]["variables"][0]["value"] = "25"
    body["definition"]["nodes"].append({"id": "n4", "type": "log", "config": {"message": "hot"}})
    body["definition"]["connections"].append({"source": "n2", "target": "n4", "port": 1})
    await api.put(f"/flows/{fid}", body)
    assert (await api.post(f"/flows/{fid}/publish"))["version"] == 2
    return fid


async def test_versions_are_immutable_snapshots_and_compare_shows_the_change(api, seed_flow):
    fid = await _two_versions(api, seed_flow)
    diff = await api.get(f"/flows/{fid}/versions/compare?v1=1&v2=2")
    assert [n["id"] for n in diff["nodes"]["added"]] == ["n4"]
    assert diff["connections"]["added"] == [{"source": "n2", "target": "n4", "port": 1}]
    assert not diff["same"]


async def test_restore_publishes_a_copy_as_the_next_version(api, seed_flow):
    fid = await _two_versions(api, seed_flow)
    v3 = await api.post(f"/flows/{fid}/versions/1/restore")  # seed 002: one call, a new version
    assert (v3["version"], v3["restored_from"]) == (3, 1)
    versions = (await api.get(f"/flows/{fid}/versions"))["versions"]
    assert [(v["version"], v["restored_from"]) for v in versions] == [(1, None), (2, None), (3, 1)]
    v1 = await api.get(f"/flows/{fid}/versions/1")
    assert v3["definition"] == v1["definition"] and len(v1["definition"]["nodes"]) == 3
    flow = await api.get(f"/flows/{fid}")
    assert (flow["status"], flow["version"], flow["restored_from"]) == ("published", 3, None)
    assert flow["definition"] == v1["definition"]  # "latest" is the restored content
    assert (await api.get(f"/flows/{fid}/versions/compare?v1=1&v2=3"))["same"]
    # a restore is undone by restoring the version before it; history only grows
    v4 = await api.post(f"/flows/{fid}/versions/2/restore")
    assert (v4["version"], v4["restored_from"]) == (4, 2)
    assert v4["definition"] == (await api.get(f"/flows/{fid}/versions/2"))["definition"]
    assert [v["version"] for v in (await api.get(f"/flows/{fid}/versions"))["versions"]] == [1, 2, 3, 4]


async def test_restore_as_draft_leaves_the_versions_unchanged(api, seed_flow):
    fid = await _two_versions(api, seed_flow)
    draft = await api.post(f"/flows/{fid}/versions/1/restore", {"publish": False})
    assert (draft["status"], draft["restored_from"], draft["version"]) == ("draft", 1, 2)
    assert [v["version"] for v in (await api.get(f"/flows/{fid}/versions"))["versions"]] == [1, 2]
    v3 = await api.post(f"/flows/{fid}/publish")
    assert v3["version"] == 3
    assert (await api.get(f"/flows/{fid}/versions"))["versions"][2]["restored_from"] == 1


async def test_a_restore_that_no_longer_validates_creates_nothing(api, seed_flow, monkeypatch):
    from shared_schema.boards import Board

    fid = await _two_versions(api, seed_flow)
    # the boards changed since v2: firmware built without the log node
    has_node = Board.has_node
    monkeypatch.setattr(Board, "has_node", lambda self, t: t != "log" and has_node(self, t))
    problem = await api.post(f"/flows/{fid}/versions/2/restore", expect=422)
    assert "version 2" in problem["detail"] and "no longer validates" in problem["detail"]
    assert "/definition/nodes/3/type" in {e["pointer"] for e in problem["errors"]}
    assert [v["version"] for v in (await api.get(f"/flows/{fid}/versions"))["versions"]] == [1, 2]
    flow = await api.get(f"/flows/{fid}")
    assert (flow["status"], flow["version"]) == ("published", 2)


async def test_restore_refuses_to_lose_draft_edits_or_revive_an_archived_flow(api, seed_flow):
    fid = await _two_versions(api, seed_flow)
    await api.post(f"/flows/{fid}/versions/2/restore", {"publish": False})
    await api.put(f"/flows/{fid}", {"description": "work in progress"})  # no content change: nothing to lose
    assert (await api.post(f"/flows/{fid}/versions/1/restore"))["version"] == 3
    await api.post(f"/flows/{fid}/versions/2/restore", {"publish": False})
    body = seed_flow()
    body["definition"]["variables"][0]["value"] = "40"
    await api.put(f"/flows/{fid}", body)
    problem = await api.post(f"/flows/{fid}/versions/1/restore", expect=409)
    assert "unpublished draft changes" in problem["detail"]
    assert [v["version"] for v in (await api.get(f"/flows/{fid}/versions"))["versions"]] == [1, 2, 3]
    await api.post(f"/flows/{fid}/archive")
    await api.post(f"/flows/{fid}/versions/1/restore", expect=409)
    problem = await api.post(f"/flows/{fid}/versions/1/restore", {"publish": "maybe"}, expect=422)
    assert problem["errors"][0]["pointer"] == "/publish"


async def test_compare_needs_two_existing_versions(api):
    flow = await api.published_flow()
    problem = await api.get(f"/flows/{flow['id']}/versions/compare?v1=1", expect=422)
    assert problem["errors"][0]["pointer"] == "?v2"
    await api.get(f"/flows/{flow['id']}/versions/compare?v1=1&v2=7", expect=404)
    await api.get(f"/flows/{flow['id']}/versions/compare?v1=one&v2=1", expect=422)


async def test_archive_hides_a_flow_from_the_default_list(api):
    flow = await api.published_flow()
    await api.post(f"/flows/{flow['id']}/archive")
    assert (await api.get("/flows"))["flows"] == []
    assert [f["id"] for f in (await api.get("/flows?status=archived"))["flows"]] == [flow["id"]]


async def test_an_archived_flow_is_neither_deployed_nor_executed(api):
    flow = await api.published_flow()
    await api.post("/devices", {"id": "arch-1", "board": "unix-sim"}, expect=201)
    await api.post(f"/flows/{flow['id']}/archive")
    for path, body in (("/executions", {"flow_id": flow["id"], "target_devices": ["arch-1"]}),
                       ("/deployments", {"flow_id": flow["id"], "target_devices": ["arch-1"]})):
        problem = await api.post(path, body, expect=409)
        assert "archived" in problem["detail"], (path, problem)
    assert (await api.get("/executions"))["executions"] == []


async def test_step_form_flows_are_accepted(api):
    body = {"name": "maintenance-routine", "steps": [
        {"node": "clear-cache", "params": {}},
        {"node": "toggle-feature", "params": {"name": "debug-overlay", "enabled": False}},
        {"node": "set-log-level", "params": {"level": "warning"}}]}
    flow = await api.published_flow(body)
    assert flow["version"] == 1
    version = (await api.get(f"/flows/{flow['id']}/versions"))["versions"][0]
    assert version["types"] == ["clear_cache", "set_log_level", "toggle_feature"]


async def test_missing_flows_are_404_and_bad_json_is_400(api):
    await api.get("/flows/flow_nope", expect=404)
    await api.post("/flows/flow_nope/publish", expect=404)
    resp = await api.client.post("/api/v1/flows", data=b"{not json", headers={"x-api-key": api.keys["admin"]})
    assert resp.status == 400 and resp.content_type == "application/problem+json"


@pytest.mark.parametrize("text, line, column", [
    (b'{"name": "x",\n "definition": {"nodes": [{"id": "a", "x": NaN}]}}', 2, 44),
    (b'{"name": "x", "tags": [Infinity]}', 1, 24),
    (b'{"name": "x",\n\n  "tags": [}', 3, 12),
])
async def test_a_body_that_is_not_strict_json_is_400_with_its_position(api, text, line, column):
    resp = await api.client.post("/api/v1/flows", data=text, headers={"x-api-key": api.keys["admin"]})
    problem = await resp.json()
    assert (resp.status, problem["line"], problem["column"]) == (400, line, column), problem
    assert (await api.get("/flows"))["flows"] == []  # nothing stored, nothing to echo back as NaN


async def test_a_variable_value_that_does_not_fit_its_type_points_at_the_value(api):
    body = {"name": "x", "definition": {"nodes": [], "variables": [
        {"name": "ok", "type": "number", "value": "30"}, {"name": "t", "type": "number", "value": "warm"}]}}
    problem = await api.post("/flows", body, expect=422)
    assert problem["errors"] == [{"pointer": "/definition/variables/1/value",
                                  "message": "'warm' is not a number; write e.g. 30"}]


async def test_get_flow_answers_the_same_document_as_the_store_however_it_is_made(api, seed_flow):
    """GET /flows/{id} splices the stored content into the document's JSON
    text (no decode and encode again): it must equal flow_doc's document,
    for a graph flow, a step flow, a published one and an emptied draft."""
    from cloud.appkeys import DB
    from cloud.models import Flow
    from cloud.store.flows import flow_doc, get_flow_json

    graph = await api.post("/flows", seed_flow(), expect=201)
    steps = await api.post("/flows", {"name": "s", "tags": ['a"b', "ü"], "steps": [
        {"node": "clear-cache", "params": {}}]}, expect=201)
    published = await api.published_flow()
    bare = await api.post("/flows", {"name": "empty"}, expect=201)
    for flow in (graph, steps, published, bare):
        expected = api.app[DB].call(lambda: flow_doc(Flow.get_by_id(flow["id"])))
        assert await api.get(f"/flows/{flow['id']}") == expected
        assert json.loads(api.app[DB].call(get_flow_json, flow["id"])) == expected
    await api.put(f"/flows/{graph['id']}", {"name": "renamed"})
    assert (await api.get(f"/flows/{graph['id']}"))["name"] == "renamed"  # a changed row is a new answer
    assert (await api.get("/flows/nope", expect=404))["detail"] == "no flow 'nope'"


async def test_validate_checks_content_as_publishing_would_and_saves_nothing(api, seed_flow):
    """An editor shows problems as they are made (issue 12): POST
    /flows/validate answers 200 with the pointers, for any role."""
    body = seed_flow()
    ok = await api.post("/flows/validate", body, role="viewer")
    assert ok["valid"] and ok["problems"] == [] and "unix-sim" in ok["boards"] and ok["types"] == ["dht", "mqtt_out", "switch"]
    del body["definition"]["nodes"][0]["config"]["pin"]
    body["definition"]["connections"].append({"source": "n3", "target": "nowhere"})
    bad = await api.post("/flows/validate", body, role="viewer")
    assert not bad["valid"] and bad["boards"] == []
    pointers = {p["pointer"] for p in bad["problems"]}
    assert "/definition/nodes/0/config/pin" in pointers and any(p.startswith("/definition/connections") for p in pointers)
    only_esp = await api.post("/flows/validate", dict(seed_flow(), boards=["esp32-devkitc"]))
    assert only_esp["boards"] == ["esp32-devkitc"]
    problem = await api.post("/flows/validate", dict(seed_flow(), boards=["toaster"]), expect=422)
    assert problem["errors"][0]["pointer"] == "/boards/0"
    assert (await api.get("/flows"))["flows"] == []  # nothing saved

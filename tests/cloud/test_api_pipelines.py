"""Pipelines: flows run one after the other, stop or continue on failure."""

from __future__ import annotations

from shared_schema.messages import Ack

from cloud.appkeys import DB, DRIVER
from cloud.store.runs import ingest

FLOWS = [
    {"name": "clear", "steps": [{"node": "clear-cache", "params": {}}, {"node": "log", "params": {"message": "a"}}]},
    {"name": "notify", "steps": [{"node": "log", "params": {"message": "b"}}, {"node": "clear-cache"}]},
    {"name": "level", "steps": [{"node": "set-log-level", "params": {"level": "error"}}, {"node": "clear-cache"}]},
]


async def _setup(api, policies):
    flows = [await api.published_flow(f) for f in FLOWS[:len(policies)]]
    await api.post("/devices", {"id": "p1", "board": "unix-sim"}, expect=201)
    body = {"name": "CI/CD", "targets": {"target_devices": ["p1"]},
            "steps": [{"flow_id": f["id"], "on_failure": pol} for f, pol in zip(flows, policies)]}
    return await api.post("/pipelines", body, expect=201)


async def _step_runs(api, pipeline_id, run_id, index, status):
    """Answer the execution of step `index` as the device would."""
    async def started():
        run = await api.get(f"/pipelines/{pipeline_id}/runs/{run_id}")
        return run["steps_snapshot"][index]["execution_id"]
    exe_id = await api.until(started)
    cmd = f"{exe_id}.p1.exec"
    api.app[DRIVER].on_ack("p1", Ack(id=cmd, op="exec", state="received"))
    api.app[DRIVER].on_ack("p1", Ack(id=cmd, op="exec", state="done", status=status, run=1))
    record = {"run": 1, "exec": exe_id, "trigger": "exec", "status": status, "nodes": []}
    api.app[DB].call(ingest, [("p1", {"dev": "p1", "runs": [record], "dropped": 0}, 1.0)])



async def _finished(api, pipeline_id, run_id):
    async def done():
        run = await api.get(f"/pipelines/{pipeline_id}/runs/{run_id}")
        return run if run["status"] in ("completed", "failed", "cancelled") else None
    return await api.until(done)


async def test_a_failed_continue_step_is_passed_over(api):
    pipeline = await _setup(api, ["stop", "continue", "stop"])
    run = await api.post(f"/pipelines/{pipeline['id']}/runs", expect=201)
    assert run["status"] == "running" and run["steps_snapshot"][0]["status"] == "running"
    await _step_runs(api, pipeline["id"], run["id"], 0, "completed")
    await _step_runs(api, pipeline["id"], run["id"], 1, "failed")
    await _step_runs(api, pipeline["id"], run["id"], 2, "completed")
    final = await _finished(api, pipeline["id"], run["id"])
    assert final["status"] == "completed"
    assert [s["status"] for s in final["steps_snapshot"]] == ["completed", "failed", "completed"]
    got = await api.get(f"/pipelines/{pipeline['id']}")
    assert got["use_count"] == 1 and got["runs"] == {"total": 1, "completed": 1, "failed": 0, "running": 0}


async def test_a_failed_stop_step_ends_the_run_and_skips_the_rest(api):
    pipeline = await _setup(api, ["stop", "stop", "continue"])
    run = await api.post(f"/pipelines/{pipeline['id']}/runs", expect=201)
    await _step_runs(api, pipeline["id"], run["id"], 0, "failed")
    final = await _finished(api, pipeline["id"], run["id"])
    assert final["status"] == "failed"
    assert [s["status"] for s in final["steps_snapshot"]] == ["failed", "skipped", "skipped"]


async def test_cancel_a_run(api):
    pipeline = await _setup(api, ["stop", "stop"])
    run = await api.post(f"/pipelines/{pipeline['id']}/runs", expect=201)
    cancelled = await api.post(f"/pipelines/{pipeline['id']}/runs/{run['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    assert [s["status"] for s in cancelled["steps_snapshot"]] == ["failed", "skipped"]
    exe = await api.get(f"/executions/{cancelled['steps_snapshot'][0]['execution_id']}")
    assert exe["status"] == "cancelled"
    await api.post(f"/pipelines/{pipeline['id']}/runs/{run['id']}/cancel", expect=409)


async def test_pipelines_need_two_known_flows(api):
    flow = await api.published_flow(FLOWS[0])
    problem = await api.post("/pipelines", {"name": "x", "steps": [{"flow_id": flow["id"]}]}, expect=422)
    assert problem["errors"][0]["pointer"] == "/steps"
    problem = await api.post("/pipelines", {"name": "x", "steps": [{"flow_id": flow["id"]}, {"flow_id": "nope"}]},
                             expect=422)
    assert problem["errors"][0]["pointer"] == "/steps/1/flow_id"
    await api.get("/pipelines/pl_nope", expect=404)


async def test_a_manual_step_waits_for_step_done_or_step_failed(api):
    flows = [await api.published_flow(f) for f in FLOWS[:3]]
    await api.post("/devices", {"id": "p1", "board": "unix-sim"}, expect=201)
    pipeline = await api.post("/pipelines", {"name": "checked", "targets": {"target_devices": ["p1"]}, "steps": [
        {"flow_id": flows[0]["id"], "manual": True}, {"flow_id": flows[1]["id"]}, {"flow_id": flows[2]["id"]}]},
        expect=201)
    assert [s["manual"] for s in pipeline["steps"]] == [True, False, False]
    pid = pipeline["id"]
    run = await api.post(f"/pipelines/{pid}/runs", expect=201)
    await _step_runs(api, pid, run["id"], 0, "completed")

    async def waiting():
        got = await api.get(f"/pipelines/{pid}/runs/{run['id']}")
        return got if got["steps_snapshot"][0]["waiting"] else None
    got = await api.until(waiting)  # its execution ended; the step waits on a person
    assert got["status"] == "running" and got["steps_snapshot"][0]["status"] == "running"
    assert got["steps_snapshot"][0]["execution_status"] == "completed"
    await api.post(f"/pipelines/{pid}/runs/{run['id']}/advance", {"success": "yes"}, expect=422)
    got = await api.post(f"/pipelines/{pid}/runs/{run['id']}/advance", {"success": True})
    assert [s["status"] for s in got["steps_snapshot"]] == ["completed", "running", "pending"]
    # a step that is not manual can be ended by hand too; its execution is cancelled
    exe_id = got["steps_snapshot"][1]["execution_id"]
    got = await api.post(f"/pipelines/{pid}/runs/{run['id']}/advance", {"success": False})
    assert got["status"] == "failed" and [s["status"] for s in got["steps_snapshot"]] == ["completed", "failed",
                                                                                         "skipped"]
    assert got["steps_snapshot"][1]["error"] == "marked failed by hand"
    assert (await api.get(f"/executions/{exe_id}"))["status"] == "cancelled"
    problem = await api.post(f"/pipelines/{pid}/runs/{run['id']}/advance", {"success": True}, expect=409)
    assert "it is failed" in problem["detail"]


async def test_seed_003_run_endpoint_and_run_lists(api):
    first = await _setup(api, ["stop", "stop"])
    flows = [s["flow_id"] for s in first["steps"]]
    second = await api.post("/pipelines", {"name": "other", "targets": {"target_devices": ["p1"]},
                                           "steps": [{"flow_id": f} for f in flows]}, expect=201)
    run = await api.post("/pipelines/run", {"action": "start", "pipeline_id": first["id"]}, expect=201)
    assert run["pipeline_id"] == first["id"] and run["status"] == "running"
    got = await api.post("/pipelines/run", {"action": "advance", "run_id": run["id"], "success": True})
    assert [s["status"] for s in got["steps_snapshot"]] == ["completed", "running"]
    got = await api.post("/pipelines/run", {"action": "cancel", "run_id": run["id"]})
    assert got["status"] == "cancelled"
    problem = await api.post("/pipelines/run", {"action": "advance", "run_id": run["id"]}, expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/success"]
    await api.post("/pipelines/run", {"action": "restart", "run_id": run["id"]}, expect=422)
    await api.post("/pipelines/run", {"action": "cancel", "run_id": "plr_nope"}, expect=404)
    later = [await api.post(f"/pipelines/{pid}/runs", expect=201) for pid in (second["id"], first["id"])]
    # limit honoured on a pipeline's runs, newest first, with a link to the rest
    page = await api.get(f"/pipelines/{first['id']}/runs?limit=1")
    assert [r["id"] for r in page["runs"]] == [later[1]["id"]] and page["next"]
    rest = await api.get(page["next"].removeprefix("/api/v1"))
    assert [r["id"] for r in rest["runs"]] == [run["id"]] and rest["next"] is None
    # recent runs across pipelines, under both names
    every = await api.get("/pipelines/runs?limit=2")
    assert [r["id"] for r in every["runs"]] == [later[1]["id"], later[0]["id"]]
    assert (await api.get("/pipelines/run?limit=2"))["runs"] == every["runs"]
    assert [r["id"] for r in (await api.get("/pipelines/runs?status=cancelled"))["runs"]] == [run["id"]]
    await api.get("/pipelines/runs?limit=0", expect=422)


async def test_edit_a_pipeline_checked_as_on_create_and_not_while_it_runs(api):
    pipeline = await _setup(api, ["stop", "stop"])
    pid, flows = pipeline["id"], [s["flow_id"] for s in pipeline["steps"]]
    third = await api.published_flow(FLOWS[2])
    got = await api.call("PATCH", f"/pipelines/{pid}", {
        "name": "CI/CD v2", "description": "nightly",
        "steps": [{"flow_id": flows[0], "on_failure": "continue"}, {"flow_id": third["id"], "manual": True}]})
    assert got["name"] == "CI/CD v2" and got["description"] == "nightly"
    assert [(s["flow_id"], s["flow_name"], s["on_failure"], s["manual"]) for s in got["steps"]] == [
        (flows[0], "clear", "continue", False), (third["id"], "level", "stop", True)]
    assert got["targets"]["target_devices"] == ["p1"]  # what the body does not give stays
    got = await api.call("PATCH", f"/pipelines/{pid}", {"description": None, "targets": {"target_tags": ["lab"]}})
    assert got["description"] is None and got["name"] == "CI/CD v2" and got["targets"]["target_tags"] == ["lab"]
    assert await api.get(f"/pipelines/{pid}") == got

    # the same checks and pointers as POST; nothing changes
    problem = await api.call("PATCH", f"/pipelines/{pid}", {"steps": [{"flow_id": flows[0]}, {"flow_id": "nope"}]},
                             expect=422)
    assert problem["errors"][0]["pointer"] == "/steps/1/flow_id" and "nope" in problem["errors"][0]["message"]
    problem = await api.call("PATCH", f"/pipelines/{pid}", {"steps": [{"flow_id": flows[0]}]}, expect=422)
    assert problem["errors"][0]["pointer"] == "/steps"
    problem = await api.call("PATCH", f"/pipelines/{pid}", {"steps": [{"flow_id": flows[0], "on_failure": "maybe"},
                                                                      {"flow_id": flows[1]}]}, expect=422)
    assert problem["errors"][0]["pointer"] == "/steps/0/on_failure"
    problem = await api.call("PATCH", f"/pipelines/{pid}", {"name": ""}, expect=422)
    assert problem["errors"][0]["pointer"] == "/name"
    assert await api.get(f"/pipelines/{pid}") == got
    await api.call("PATCH", f"/pipelines/{pid}", {"name": "x"}, role="viewer", expect=403)
    await api.call("PATCH", f"/pipelines/{pid}", {"name": "by an operator"}, role="operator")
    await api.call("PATCH", "/pipelines/pl_nope", {"name": "x"}, expect=404)

    # a run follows the steps as they are: no edit until it ends
    await api.call("PATCH", f"/pipelines/{pid}", {"targets": {"target_devices": ["p1"]}})
    run = await api.post(f"/pipelines/{pid}/runs", expect=201)
    problem = await api.call("PATCH", f"/pipelines/{pid}", {"name": "mid-run"}, expect=409)
    assert "run in progress" in problem["detail"]
    await api.post(f"/pipelines/{pid}/runs/{run['id']}/cancel")
    assert (await api.call("PATCH", f"/pipelines/{pid}", {"name": "after"}))["name"] == "after"

"""Pipelines: flows run one after the other, stop or continue on failure."""

from __future__ import annotations

from shared_schema.messages import Ack

from cloud.appkeys import DRIVER

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

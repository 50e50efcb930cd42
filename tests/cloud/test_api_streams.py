"""The fleet and execution streams (issue 12, live everywhere): with a
browser's session cookie, and through the real bridge and broker."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest
from shared_schema.messages import Ack
from shared_schema.topics import Topics

from cloud import live
from cloud.app import init_app
from cloud.appkeys import CONFIG, DB, DRIVER, STREAMS
from cloud.config import Config
from cloud.store.runs import ingest

STEP_FLOW = {"name": "tidy", "steps": [{"node": "clear-cache", "params": {}},
                                       {"node": "set-log-level", "params": {"level": "warning"}}]}


class Events:
    """A server-sent event stream, read event by event."""

    def __init__(self, resp):
        self.resp = resp
        self.seen: list[tuple[str, dict]] = []

    async def until(self, wanted, timeout_s: float = 10.0) -> tuple[str, dict]:
        """Read events until `wanted(name, data)` is true; returns that event."""
        name = None
        while True:
            line = (await asyncio.wait_for(self.resp.content.readline(), timeout_s)).decode().rstrip("\n")
            assert line or not self.resp.content.at_eof(), f"the stream ended; saw {self.seen}"
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                event = (name, json.loads(line[6:]))
                self.seen.append(event)
                if wanted(*event):
                    return event


async def _logged_in(api) -> dict:
    """A user logged in with the client's cookie jar, as a browser is."""
    api.app[CONFIG].password_cost = 4
    resp = await api.client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": "x" * 10})
    assert resp.status == 201
    return await resp.json()


def _ack(api, dev, exe_id, state, **fields):
    api.app[DRIVER].on_ack(dev, Ack(id=f"{exe_id}.{dev}.exec", op="exec", state=state, **fields))


async def test_an_execution_streams_status_and_each_nodes_log_lines_to_a_cookie_session(api):
    await _logged_in(api)
    flow = await api.published_flow(STEP_FLOW)
    for dev in ("s0", "s1"):
        await api.post("/devices", {"id": dev, "board": "unix-sim"}, expect=201)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True, "include_offline": True}, expect=201)
    resp = await api.client.get(f"/api/v1/executions/{exe['id']}/stream")  # the cookie, no key
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    events = Events(resp)
    name, meta = await events.until(lambda n, d: True)
    assert name == "metadata" and meta["status"] == "pending" and len(meta["targets"]) == 2

    _ack(api, "s0", exe["id"], "received")
    _, running = await events.until(lambda n, d: n == "update" and d["execution"]["status"] == "running")
    assert [(t["device_id"], t["status"]) for t in running["targets"]] == [("s0", "running")]

    _ack(api, "s0", exe["id"], "done", status="completed", run=4)
    record = {"run": 4, "exec": exe["id"], "trigger": "exec", "status": "completed", "us": 300,
              "logs": [["info", "s1", "cache cleared"], ["warning", "s2", "log level now warning"]],
              "nodes": [{"id": "s1", "type": "clear_cache", "us": 100, "out": "{}", "port": 0, "err": None},
                        {"id": "s2", "type": "set_log_level", "us": 200, "out": "{}", "port": 0, "err": None}]}
    batch = [("s0", {"dev": "s0", "runs": [record], "dropped": 0})]
    api.app[DB].call(ingest, [(d, b, 1.0) for d, b in batch])
    live.runs_stored(api.app[STREAMS], batch)  # what the bridge tells once it has stored them
    _, logged = await events.until(lambda n, d: n == "update" and any(
        (t["record"] or {}).get("logs") for t in d["targets"]))
    s0 = next(t for t in logged["targets"] if t["device_id"] == "s0")
    assert s0["record"]["logs"] == record["logs"] and [n["id"] for n in s0["record"]["nodes"]] == ["s1", "s2"]

    _ack(api, "s1", exe["id"], "rejected", reason="out of memory")
    _, done = await events.until(lambda n, d: n == "complete")
    assert done == {"id": exe["id"], "status": "failed"}
    final = [d for n, d in events.seen if n == "update"][-1]
    assert final["execution"]["counts"]["completed"] == 1 and final["execution"]["counts"]["failed"] == 1
    statuses = {t["device_id"]: t["status"] for n, d in events.seen if n == "update" for t in d["targets"]}
    assert statuses == {"s0": "completed", "s1": "failed"}
    resp.close()


async def test_an_execution_stream_filters_log_lines_and_ends_at_once_when_finished(api):
    flow = await api.published_flow(STEP_FLOW)
    await api.post("/devices", {"id": "s0", "board": "unix-sim"}, expect=201)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True, "include_offline": True}, expect=201)
    await api.post(f"/executions/{exe['id']}/cancel")
    headers = {"x-api-key": api.keys["viewer"], "Last-Event-ID": "3"}
    resp = await api.client.get(f"/api/v1/executions/{exe['id']}/stream?level=warning", headers=headers)
    events = Events(resp)
    await events.until(lambda n, d: n == "complete")
    assert [n for n, _ in events.seen] == ["sync", "complete"] and events.seen[1][1]["status"] == "cancelled"
    await api.get(f"/executions/{exe['id']}/stream?level=loud", expect=422)
    await api.get("/executions/exe_nope/stream", expect=404)
    await api.get("/devices/nope/stream", expect=404)
    resp = await api.client.get("/api/v1/streams/fleet")  # no key, no session
    assert resp.status == 401


async def test_the_fleet_stream_tells_deployment_changes(api, seed_flow):
    await _logged_in(api)
    flow = await api.published_flow()
    for dev in ("f0", "f1"):
        await api.post("/devices", {"id": dev, "board": "unix-sim"}, expect=201)
    resp = await api.client.get("/api/v1/streams/fleet")
    events = Events(resp)
    _, meta = await events.until(lambda n, d: n == "metadata")
    assert meta["devices"] == {"online": 0, "offline": 0, "never_seen": 2, "total": 2} and meta["deployments"] == []
    dep = await api.post("/deployments", {"flow_id": flow["id"], "strategy": "all_at_once", "target_devices": ["f0"]},
                         expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    _, started = await events.until(lambda n, d: n == "deployment")
    assert started["deployment"]["id"] == dep["id"] and started["deployment"]["status"] == "running"
    await api.post(f"/deployments/{dep['id']}/cancel")
    _, cancelled = await events.until(lambda n, d: n == "deployment" and d["deployment"].get("status") == "cancelled")
    assert cancelled["deployment"]["id"] == dep["id"]
    resp.close()


@pytest.fixture
def broker(tmp_path):
    from tools.infra.broker import mosquitto_path, start_broker

    if not mosquitto_path():
        pytest.skip("needs Mosquitto")
    b = start_broker(tmp_path / "broker", users={"cloud": "cloud-pw"})
    yield b
    b.stop()


@pytest.mark.broker
async def test_through_the_bridge_a_device_comes_online_on_the_fleet_stream_and_its_run_on_the_execution_stream(
        db_url, aiohttp_client, broker):
    from tools.infra.tls import client_context

    loop = asyncio.get_running_loop()
    config = Config(db_url=db_url, mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}",
                    mqtt_ca_file=str(broker.tls.ca), secret=b"r" * 32, engine_tick_s=0.1, password_cost=4,
                    on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw))
    client = await aiohttp_client(init_app(config))
    session = await (await client.post("/api/v1/auth/register",
                                       json={"email": "ada@example.com", "password": "x" * 10})).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    made = await (await client.post("/api/v1/devices", json={"id": "br1", "board": "unix-sim"}, headers=auth)).json()
    flow = await (await client.post("/api/v1/flows", json=STEP_FLOW, headers=auth)).json()
    await client.post(f"/api/v1/flows/{flow['id']}/publish", headers=auth)
    fleet = Events(await client.get("/api/v1/streams/fleet", headers=auth))
    await fleet.until(lambda n, d: n == "metadata")
    one = Events(await client.get("/api/v1/devices/br1/stream", headers=auth))
    _, meta = await one.until(lambda n, d: n == "metadata")
    assert meta["id"] == "br1" and meta["state"] == "never_seen"

    mqtt, topics = made["credentials"]["mqtt"], Topics("ff")
    async with aiomqtt.Client(broker.host, broker.port, username=mqtt["username"], password=mqtt["password"],
                              identifier=mqtt["client_id"], tls_context=client_context(broker.tls.ca)) as device:
        await device.publish(topics.status("br1"), json.dumps({"state": "online", "board": "unix-sim",
                                                               "flow": "f_old", "ver": 3}), qos=1, retain=True)
        _, online = await fleet.until(lambda n, d: n == "device")
        assert online["device"]["id"] == "br1" and online["device"]["online"] and online["device"]["ver"] == 3
        _, status = await one.until(lambda n, d: n == "status")
        assert status == online
        await device.publish(topics.health("br1"), json.dumps({"uptime_s": 12.5, "heap": 40000, "runs": 3,
                                                               "errors": 1, "last_error": "n2: OSError"}))
        _, health = await one.until(lambda n, d: n == "health")
        assert health["health"]["errors"] == 1 and health["health"]["uptime_s"] == 12.5

        exe = await (await client.post("/api/v1/executions", json={"flow_id": flow["id"], "all": True},
                                       headers=auth)).json()
        stream = Events(await client.get(f"/api/v1/executions/{exe['id']}/stream", headers=auth))
        await stream.until(lambda n, d: n == "metadata")
        ack_id = f"{exe['id']}.br1.exec"
        await device.publish(topics.ack("br1"), json.dumps({"id": ack_id, "op": "exec", "state": "received"}), qos=1)
        await device.publish(topics.ack("br1"), json.dumps({"id": ack_id, "op": "exec", "state": "done",
                                                            "status": "completed", "run": 1}), qos=1)
        record = {"run": 1, "exec": exe["id"], "trigger": "exec", "status": "completed", "us": 50,
                  "logs": [["info", "s1", "cache cleared"]],
                  "nodes": [{"id": "s1", "type": "clear_cache", "us": 50, "out": "{}", "port": 0, "err": None}]}
        await device.publish(topics.runs("br1"), json.dumps({"dev": "br1", "runs": [record], "dropped": 0}), qos=1)
        await stream.until(lambda n, d: n == "complete", timeout_s=15)
        _, runs = await one.until(lambda n, d: n == "runs")
        assert runs["runs"][0]["exec"] == exe["id"] and runs["runs"][0]["logs"] == record["logs"]
        logs = [t["record"]["logs"] for n, d in stream.seen if n == "update" for t in d["targets"] if t["record"]]
        assert [["info", "s1", "cache cleared"]] in logs
        await device.publish(topics.status("br1"), json.dumps({"state": "offline"}), qos=1, retain=True)
        _, offline = await fleet.until(lambda n, d: n == "device" and not d["device"]["online"])
        assert offline["device"]["state"] == "offline"


async def test_a_pipeline_streams_its_runs_step_by_step(api):
    flows = [await api.published_flow({"name": n, "steps": [{"node": "clear-cache", "params": {}}]})
             for n in ("first", "second")]
    await api.post("/devices", {"id": "p1", "board": "unix-sim"}, expect=201)
    pipe = await api.post("/pipelines", {"name": "two", "targets": {"target_devices": ["p1"]},
                                         "steps": [{"flow_id": f["id"]} for f in flows]}, expect=201)
    resp = await api.client.get(f"/api/v1/pipelines/{pipe['id']}/stream", headers={"x-api-key": api.keys["viewer"]})
    events = Events(resp)
    _, meta = await events.until(lambda n, d: n == "metadata")
    assert meta["pipeline"]["id"] == pipe["id"] and meta["runs"] == []
    run = await api.post(f"/pipelines/{pipe['id']}/runs", expect=201)
    _, started = await events.until(lambda n, d: n == "run")
    assert started["run"]["id"] == run["id"] and started["run"]["status"] == "running"
    latest = started
    for index in (0, 1):
        if not latest["run"]["steps_snapshot"][index]["execution_id"]:  # the step starts once the one before ends
            _, latest = await events.until(lambda n, d: d["run"]["steps_snapshot"][index]["execution_id"])
        exe_id = latest["run"]["steps_snapshot"][index]["execution_id"]
        _ack(api, "p1", exe_id, "received")
        _ack(api, "p1", exe_id, "done", status="completed", run=index + 1)
        record = {"run": index + 1, "exec": exe_id, "trigger": "exec", "status": "completed", "nodes": []}
        api.app[DB].call(ingest, [("p1", {"dev": "p1", "runs": [record], "dropped": 0}, 1.0)])
    _, done = await events.until(lambda n, d: d["run"]["status"] == "completed")
    assert [s["status"] for s in done["run"]["steps_snapshot"]] == ["completed", "completed"]
    assert done["pipeline"]["runs"]["completed"] == 1
    steps_seen = [d["run"]["current_step"] for n, d in events.seen if n == "run"]
    assert steps_seen == sorted(steps_seen) and 1 in steps_seen
    resp.close()
    await api.get("/pipelines/nope/stream", expect=404)


async def test_a_pipeline_stream_tells_an_edit_and_a_delete(api):
    flow = await api.published_flow({"name": "only", "steps": [{"node": "clear-cache", "params": {}}]})
    pipe = await api.post("/pipelines", {"name": "before", "targets": {"all": True},
                                         "steps": [{"flow_id": flow["id"]}, {"flow_id": flow["id"]}]}, expect=201)
    resp = await api.client.get(f"/api/v1/pipelines/{pipe['id']}/stream", headers={"x-api-key": api.keys["viewer"]})
    events = Events(resp)
    _, meta = await events.until(lambda n, d: n == "metadata")
    assert meta["pipeline"]["name"] == "before"
    await api.call("PATCH", f"/pipelines/{pipe['id']}", {"name": "after"})
    _, edited = await events.until(lambda n, d: n == "pipeline")
    assert edited["pipeline"]["name"] == "after" and len(edited["pipeline"]["steps"]) == 2
    await api.call("DELETE", f"/pipelines/{pipe['id']}", expect=204)
    assert await events.until(lambda n, d: n == "deleted") == ("deleted", {"id": pipe["id"]})
    assert (await asyncio.wait_for(resp.content.read(), 5)).strip() == b""  # and the stream ends
    assert [n for n, _d in events.seen] == ["metadata", "pipeline", "deleted"]

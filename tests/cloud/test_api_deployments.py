"""Deployments through the HTTP API, with acks fed to the driver as the
MQTT bridge would (the broker itself is in test_integration_fleet.py)."""

from __future__ import annotations

import asyncio

from shared_schema.envelope import verify
from shared_schema.messages import Ack

from cloud.app import init_app
from cloud.appkeys import DB, DRIVER
from cloud.models import Command
from cloud.store.devices import record_status

SEED_DEPLOYMENT_CONFIG = {"batch_size": 5, "batch_delay": "5m", "auto_rollback": True, "health_check": True}


async def _seed_setup(api):
    flow = await api.published_flow()
    devices = [await api.post("/devices", {"id": f"dev_00{i}", "board": "unix-sim"}, expect=201) for i in (1, 2, 3)]
    body = {"flow_id": flow["id"], "strategy": "rolling", "target_devices": ["dev_001", "dev_002", "dev_003"],
            "config": dict(SEED_DEPLOYMENT_CONFIG)}
    return flow, devices, body



def ack(api, device_id, cmd_id, state, reason=None):
    api.app[DRIVER].on_ack(device_id, Ack(id=cmd_id, op="deploy", state=state, reason=reason))


async def test_seed_001_create_deployment_works_as_written(api):
    flow, devices, body = await _seed_setup(api)
    dep = await api.post("/deployments", body, expect=201)
    assert (dep["status"], dep["strategy"], dep["total_targets"], dep["completed_targets"], dep["failed_targets"]) \
        == ("pending", "rolling", 3, 0, 0)
    assert [t["device_id"] for t in dep["targets"]] == ["dev_001", "dev_002", "dev_003"]
    assert dep["settings"]["batch_delay"] == 300 and dep["settings"]["failure_threshold"] == 20

    started = await api.post(f"/deployments/{dep['id']}/start")
    assert started["status"] == "running" and started["started_at"]
    assert {t["status"] for t in started["targets"]} == {"deploying"}
    commands = api.app[DB].call(lambda: list(Command.select().order_by(Command.id)))
    assert [c.id for c in commands] == [f"{dep['id']}.dev_00{i}.deploy" for i in (1, 2, 3)]
    for command, device in zip(commands, devices):
        head = command.payload[0]
        assert head["op"] == "deploy" and head["seq"] == 1 and head["flow"] == flow["id"] and head["ver"] == 1
        assert verify(head, bytes.fromhex(device["credentials"]["hmac_key"]), device["id"])

    for i in (1, 2, 3):
        for state in ("received", "applied", "healthy"):
            ack(api, f"dev_00{i}", f"{dep['id']}.dev_00{i}.deploy", state)

    async def done():
        got = await api.get(f"/deployments/{dep['id']}")
        return got if got["status"] == "completed" else None
    final = await api.until(done)
    assert (final["completed_targets"], final["counts"]["success"]) == (3, 3)
    assert [d["status"] for d in (await api.get("/deployments"))["deployments"]] == ["completed"]
    kinds = [e["kind"] for e in (await api.get(f"/deployments/{dep['id']}/events"))["events"]]
    assert kinds[:2] == ["created", "start"] and kinds.count("send") == 3 and kinds[-1] == "status"


async def test_a_failing_canary_rolls_back_through_the_api(api):
    flow = await api.published_flow()
    await api.devices(3, tags=["greenhouse"])
    dep = await api.post("/deployments", {"flow_id": flow["id"], "strategy": "canary", "target_tags": ["greenhouse"],
                                          "config": {"canary_percentage": 34}}, expect=201)
    dep = await api.post(f"/deployments/{dep['id']}/start")
    canaries = [t["device_id"] for t in dep["targets"] if t["status"] == "deploying"]
    assert len(canaries) == 2
    ack(api, canaries[0], f"{dep['id']}.{canaries[0]}.deploy", "healthy")
    ack(api, canaries[1], f"{dep['id']}.{canaries[1]}.deploy", "rolled_back", "error_rate 0.60 > 0.25")

    async def rolled_back():
        got = await api.get(f"/deployments/{dep['id']}")
        return got if got["status"] == "rolled_back" else None
    final = await api.until(rolled_back)
    assert [t["status"] for t in final["targets"]] == ["rolled_back", "failed", "skipped"]
    rollback = api.app[DB].call(Command.get_by_id, f"{dep['id']}.{canaries[0]}.rollback")
    assert rollback.payload[0]["op"] == "rollback"


async def test_illegal_commands_are_409(api):
    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", body, expect=201)
    problem = await api.post(f"/deployments/{dep['id']}/pause", expect=409)
    assert problem["current_status"] == "pending"
    await api.post(f"/deployments/{dep['id']}/start")
    await api.post(f"/deployments/{dep['id']}/start", expect=409)
    await api.post(f"/deployments/{dep['id']}/pause")
    assert (await api.post(f"/deployments/{dep['id']}/resume"))["status"] == "running"
    assert (await api.post(f"/deployments/{dep['id']}/cancel"))["status"] == "cancelled"
    await api.post(f"/deployments/{dep['id']}/rollback", expect=409)
    await api.post("/deployments/dep_nope/start", expect=404)


async def test_targets_lacking_a_node_type_are_refused_with_ids_and_types(api):
    flow, _, body = await _seed_setup(api)
    status = {"state": "online", "types": ["switch", "mqtt_out"], "board": "unix-sim"}
    api.app[DB].call(record_status, "dev_002", status, 1.0)
    problem = await api.post("/deployments", body, expect=422)
    assert problem["missing"] == {"dev_002": ["dht"]}
    assert problem["errors"] == [{"pointer": "/target_devices/1", "message": "device dev_002 lacks node types: dht"}]


async def test_targets_by_ids_tags_and_environment(api):
    flow = await api.published_flow()
    for dev_id, tags, env in [("a", ["lab", "east"], "prod"), ("b", ["lab"], "prod"), ("c", ["lab", "east"], "dev"),
                              ("d", [], "prod"), ("e", ["east"], "dev")]:
        await api.post("/devices", {"id": dev_id, "board": "unix-sim", "tags": tags, "environment": env}, expect=201)

    async def targets(**selector):
        dep = await api.post("/deployments", {"flow_id": flow["id"], **selector}, expect=201)
        return [t["device_id"] for t in dep["targets"]]

    assert await targets(target_devices=["d", "b"]) == ["d", "b"]
    assert await targets(target_tags=["lab"]) == ["a", "b", "c"]
    assert await targets(target_tags=["lab", "east"]) == ["a", "c"]  # every tag
    assert await targets(environment="prod") == ["a", "b", "d"]
    assert await targets(target_tags=["east"], environment="dev") == ["c", "e"]  # both
    assert await targets(target_devices=["e"], target_tags=["lab"], environment="prod") == ["e", "a", "b"]
    problem = await api.post("/deployments", {"flow_id": flow["id"], "target_tags": ["west"]}, expect=422)
    assert problem["errors"] == [{"pointer": "/target_tags", "message": "no device matches"}]
    # every device, whatever the fleet's size (target_devices stops at 10,000 entries)
    assert await targets(all=True) == ["a", "b", "c", "d", "e"]


async def test_all_on_a_cloud_without_devices_is_422(api):
    flow = await api.published_flow()
    problem = await api.post("/deployments", {"flow_id": flow["id"], "all": True}, expect=422)
    assert problem["errors"] == [{"pointer": "/all", "message": "there are no devices"}]


async def test_devices_chosen_by_tag_lacking_a_node_type_point_at_the_selector(api):
    flow, _, body = await _seed_setup(api)
    await api.call("PATCH", "/devices/dev_003", {"tags": ["lab"]})
    api.app[DB].call(record_status, "dev_003", {"state": "online", "types": ["switch"], "board": "unix-sim"}, 1.0)
    problem = await api.post("/deployments", {"flow_id": flow["id"], "target_tags": ["lab"]}, expect=422)
    assert problem["missing"] == {"dev_003": ["dht", "mqtt_out"]}
    assert problem["errors"] == [{"pointer": "/target_tags", "message": "device dev_003 lacks node types: dht, mqtt_out"}]


async def test_deployment_bodies_are_checked(api):
    flow, _, body = await _seed_setup(api)
    problem = await api.post("/deployments", dict(body, target_devices=["dev_001", "ghost"]), expect=422)
    assert problem["errors"][0]["pointer"] == "/target_devices/1"
    problem = await api.post("/deployments", dict(body, config={"batch_size": 0, "canary_delay": "1m"}), expect=422)
    assert {e["pointer"] for e in problem["errors"]} == {"/config/batch_size", "/config/canary_delay"}
    problem = await api.post("/deployments", dict(body, target_devices=[]), expect=422)
    assert problem["errors"][0]["pointer"] == "/target_devices"
    draft = await api.post("/flows", {"name": "empty"}, expect=201)
    await api.post("/deployments", dict(body, flow_id=draft["id"]), expect=409)


async def test_a_flow_in_use_cannot_be_deleted(api):
    flow, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", body, expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    problem = await api.call("DELETE", f"/flows/{flow['id']}", expect=409)
    assert problem["deployments"] == [dep["id"]]
    await api.post(f"/deployments/{dep['id']}/cancel")
    await api.call("DELETE", f"/flows/{flow['id']}", expect=204)
    await api.get(f"/flows/{flow['id']}", expect=404)
    assert (await api.get(f"/deployments/{dep['id']}"))["status"] == "cancelled"  # history stays


async def test_a_restarted_cloud_continues_and_resends_the_same_commands(aiohttp_client, cloud_config, api):
    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", dict(body, config={"batch_size": 1, "batch_delay": 0}), expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    first = api.app[DB].call(Command.get_by_id, f"{dep['id']}.dev_001.deploy").payload
    await api.client.close()  # the cloud goes away mid-deployment

    app = init_app(cloud_config)
    from cloud.store import keys as key_store
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)
    again = app[DB].call(Command.get_by_id, f"{dep['id']}.dev_001.deploy").payload
    assert again == first  # same id, same seq, same signature: the device will not apply it twice
    app[DRIVER].on_ack("dev_001", Ack(id=f"{dep['id']}.dev_001.deploy", state="healthy"))

    async def moved_on():
        resp = await client.get(f"/api/v1/deployments/{dep['id']}", headers={"x-api-key": key})
        got = await resp.json()
        return got if got["targets"][1]["status"] == "deploying" else None
    got = await api.until(moved_on)
    assert got["targets"][0]["status"] == "success" and got["targets"][1]["seq"] == 1


async def test_unanswered_commands_are_sent_again_until_answered(api):
    import time

    from cloud.store import rollout

    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", dict(body, target_devices=["dev_001"]), expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    db = api.app[DB]
    cmd_id = f"{dep['id']}.dev_001.deploy"
    db.call(rollout.mark_sent, [cmd_id], time.time())
    assert db.call(rollout.stale_commands, time.time(), 30) == []  # just sent
    stale = db.call(rollout.stale_commands, time.time() + 31, 30)
    assert [(d, m[0]["id"]) for d, m in stale] == [("dev_001", cmd_id)]
    ack(api, "dev_001", cmd_id, "healthy")

    async def answered():
        return not db.call(rollout.stale_commands, time.time() + 31, 30)
    await api.until(answered)


async def test_a_round_of_resends_is_capped_oldest_first(api):
    """Most unanswered commands of a big rollout are waiting in the broker,
    not lost: a round re-sends at most `limit` of them, the oldest first."""
    import time

    from cloud.store import rollout

    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", dict(body, target_devices=["dev_001", "dev_002", "dev_003"]), expect=201)
    await api.post(f"/deployments/{dep['id']}/start")
    db = api.app[DB]
    db.call(rollout.mark_sent, [f"{dep['id']}.dev_00{i}.deploy" for i in (1, 2, 3)], time.time())
    everything = db.call(rollout.stale_commands, time.time() + 31, 30)
    assert len(everything) == 3
    assert db.call(rollout.stale_commands, time.time() + 31, 30, 2) == everything[:2]


async def _sse_events(resp, until_event: str, limit: int = 200) -> list[tuple[str, dict]]:
    import json

    events, name = [], None
    while len(events) < limit:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if name == until_event:
                return events
    raise AssertionError(f"no {until_event} in {events}")


async def test_a_deployment_streams_metadata_updates_and_complete(api):
    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", dict(body, strategy="all_at_once", config={}), expect=201)
    resp = await api.client.get(f"/api/v1/deployments/{dep['id']}/stream", headers={"x-api-key": api.keys["viewer"]})
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    first = await _sse_events(resp, "metadata")
    assert first[0][1]["status"] == "pending" and len(first[0][1]["targets"]) == 3
    await api.post(f"/deployments/{dep['id']}/start")
    for i in (1, 2, 3):
        ack(api, f"dev_00{i}", f"{dep['id']}.dev_00{i}.deploy", "healthy")
    events = await _sse_events(resp, "complete")
    updates = [data for name, data in events if name == "update"]
    assert updates[0]["deployment"]["status"] == "running"
    assert updates[0]["deployment"]["counts"]["deploying"] == 3  # a big deployment's watcher needs no targets
    assert updates[-1]["deployment"]["counts"]["success"] == 3
    statuses = {t["device_id"]: t["status"] for u in updates for t in u["targets"] if "status" in t}
    assert statuses == {"dev_001": "success", "dev_002": "success", "dev_003": "success"}
    assert events[-1] == ("complete", {"id": dep["id"], "status": "completed"})
    resp.close()


async def test_a_stream_of_a_finished_deployment_completes_at_once_and_404s_are_problems(api):
    _, _, body = await _seed_setup(api)
    dep = await api.post("/deployments", body, expect=201)
    await api.post(f"/deployments/{dep['id']}/cancel")
    resp = await api.client.get(f"/api/v1/deployments/{dep['id']}/stream",
                                headers={"x-api-key": api.keys["viewer"], "Last-Event-ID": "7"})
    events = await _sse_events(resp, "complete")
    assert [e[0] for e in events] == ["sync", "complete"]
    await api.get("/deployments/dep_nope/stream", expect=404)


def test_a_slow_subscriber_is_dropped_without_holding_up_the_others():
    from cloud.streams import QUEUE_SIZE, Streams

    async def scenario():
        streams = Streams()
        slow, fast = streams.subscribe("k"), streams.subscribe("k")
        got = []
        for n in range(QUEUE_SIZE + 5):
            streams.publish("k", "update", {"n": n})
            got.append(await fast.next())
        assert slow.dropped and not fast.dropped and streams.count("k") == 1
        assert await slow.next() is None  # its reader learns it was dropped
        assert [g[2]["n"] for g in got] == list(range(QUEUE_SIZE + 5))
    asyncio.run(scenario())


async def test_rate_control_holds_deploys_back_and_is_shown(api):
    flow, devices, body = await _seed_setup(api)
    body.update(strategy="all_at_once", config={"base_per_minute": 1, "max_per_minute": 4, "failure_threshold": 50,
                                               "min_executed": 2})
    dep = await api.post("/deployments", body, expect=201)
    assert dep["settings"]["increment_factor"] == 2.0 and dep["rate_per_minute"] is None
    started = await api.post(f"/deployments/{dep['id']}/start")
    assert [t["status"] for t in started["targets"]] == ["deploying", "pending", "pending"]
    assert started["rate_per_minute"] == 1
    commands = api.app[DB].call(lambda: [c.id for c in Command.select()])
    assert commands == [f"{dep['id']}.dev_001.deploy"]  # one a minute: the rest wait
    problem = await api.post("/deployments", dict(body, strategy="blue_green", config={"max_per_minute": 5}),
                             expect=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/config/max_per_minute"]
    problem = await api.post("/deployments", dict(body, config={"increment_factor": 3}), expect=422)
    assert "needs base_per_minute" in problem["errors"][0]["message"]


async def test_a_rolled_back_version_is_quarantined_and_latest_skips_it(api):
    flow = await api.published_flow()
    await api.post(f"/flows/{flow['id']}/versions/1/restore", {})  # v2, the one that will fail
    await api.devices(3, tags=["greenhouse"])
    body = {"flow_id": flow["id"], "strategy": "canary", "target_tags": ["greenhouse"],
            "config": {"canary_percentage": 34}}
    dep = await api.post("/deployments", body, expect=201)
    assert dep["version"] == 2  # latest
    dep = await api.post(f"/deployments/{dep['id']}/start")
    canaries = [t["device_id"] for t in dep["targets"] if t["status"] == "deploying"]
    ack(api, canaries[0], f"{dep['id']}.{canaries[0]}.deploy", "healthy")
    ack(api, canaries[1], f"{dep['id']}.{canaries[1]}.deploy", "rolled_back", "error_rate 1.00 > 0.25; n2: boom")

    async def rolled_back():
        got = await api.get(f"/deployments/{dep['id']}")
        return got if got["status"] == "rolled_back" else None
    await api.until(rolled_back)
    v2 = (await api.get(f"/flows/{flow['id']}/versions"))["versions"][1]
    assert v2["version"] == 2 and v2["quarantined"]["deployment_id"] == dep["id"]
    assert "n2: boom" in v2["quarantined"]["reason"]

    # "latest" now means v1; v2 by name needs force and says why
    again = await api.post("/deployments", body, expect=201)
    assert again["version"] == 1
    problem = await api.post("/deployments", dict(body, version=2), expect=409)
    assert "quarantined" in problem["detail"] and "n2: boom" in problem["detail"] and "force" in problem["detail"]
    forced = await api.post("/deployments", dict(body, version=2, force=True), expect=201)
    assert forced["version"] == 2

    # lifted by hand: latest is v2 again; quarantined by hand: refused again
    lifted = await api.call("DELETE", f"/flows/{flow['id']}/versions/2/quarantine")
    assert lifted["quarantined"] is None
    assert (await api.post("/deployments", body, expect=201))["version"] == 2
    await api.call("DELETE", f"/flows/{flow['id']}/versions/2/quarantine", expect=409)
    held = await api.post(f"/flows/{flow['id']}/versions/2/quarantine", {"reason": "field report"})
    assert held["quarantined"]["reason"].startswith("field report (by ")
    assert (await api.post("/deployments", body, expect=201))["version"] == 1
    await api.post(f"/flows/{flow['id']}/versions/1/quarantine", {})
    problem = await api.post("/deployments", body, expect=409)
    assert "every version" in problem["detail"]


async def _fleet_of_four(api):
    """a: online, b: offline (seen), c: never seen, d: online but lacks dht."""
    flow = await api.published_flow()
    for dev_id in "abcd":
        await api.post("/devices", {"id": dev_id, "board": "unix-sim", "tags": ["site"]}, expect=201)
    api.app[DB].call(record_status, "a", {"state": "online"}, 1.0)
    api.app[DB].call(record_status, "b", {"state": "online"}, 1.0)
    api.app[DB].call(record_status, "b", {"state": "offline"}, 2.0)
    api.app[DB].call(record_status, "d", {"state": "online", "types": ["switch", "mqtt_out"]}, 1.0)
    return flow


async def test_a_dry_run_classifies_every_target_and_creates_nothing(api):
    flow = await _fleet_of_four(api)
    body = {"flow_id": flow["id"], "target_tags": ["site"]}
    dry = await api.post("/deployments?dry_run=true", body)
    assert dry["dry_run"] is True and dry["version"] == 1 and dry["offline"] == "wait"
    pf = dry["preflight"]
    assert pf["total"] == 4 and pf["counts"] == {"lacks_node": 1, "never_seen": 1, "offline": 1, "ready": 1}
    classes = {t["device_id"]: (t["class"], t["detail"]) for t in pf["targets"]}
    assert classes["a"] == ("ready", "") and classes["c"] == ("never_seen", "never connected to the broker")
    assert classes["b"][0] == "offline" and classes["b"][1].startswith("offline since ")
    assert classes["d"] == ("lacks_node", "lacks node types: dht")
    assert [t["class"] for t in pf["targets"]] == ["lacks_node", "never_seen", "offline", "ready"]  # worst first
    assert dry["refused"]["status"] == 422 and "lack node types" in dry["refused"]["detail"]
    assert (await api.get("/deployments"))["deployments"] == []  # nothing was created
    assert dry["rehearse"] is False  # these tests' cloud rehearses only when asked
    assert (await api.post("/deployments?dry_run=true", dict(body, rehearse=True)))["rehearse"] is True

    without_d = dict(body, target_tags=[], target_devices=["a", "b", "c"])
    assert (await api.post("/deployments?dry_run=true", without_d))["refused"] is None
    failing = await api.post("/deployments?dry_run=true", dict(without_d, offline="fail"))
    assert failing["refused"]["status"] == 409 and "b, c" in failing["refused"]["detail"]
    await api.post("/deployments?dry_run=maybe", body, expect=422)


async def test_offline_targets_wait_skip_or_fail(api):
    flow = await _fleet_of_four(api)
    body = {"flow_id": flow["id"], "target_devices": ["a", "b", "c"], "strategy": "all_at_once"}
    problem = await api.post("/deployments", dict(body, offline="fail"), expect=409)
    assert problem["offline"] == ["b", "c"] and 'offline is "fail"' in problem["detail"]
    skipped = await api.post("/deployments", dict(body, offline="skip"), expect=201)
    assert [t["device_id"] for t in skipped["targets"]] == ["a"]
    assert skipped["skipped_offline"] == {"count": 2, "devices": ["b", "c"]}
    created = (await api.get(f"/deployments/{skipped['id']}/events"))["events"][0]
    assert created["detail"]["skipped_offline"] == ["b", "c"]
    waiting = await api.post("/deployments", body, expect=201)  # the default: wait for them
    assert [t["device_id"] for t in waiting["targets"]] == ["a", "b", "c"]
    await api.post("/deployments", dict(body, target_devices=["b", "c"], offline="skip"), expect=409)
    await api.post("/deployments", dict(body, offline="later"), expect=422)

"""Rehearsal end to end (issue 14): a real Mosquitto, two simulated devices
running the real firmware, the cloud's twins running it too.

The devices run v1 (DHT22 -> mqtt_out) and record what their sensors read,
one reading a flaky driver's garbage. v2 adds a threshold (switch on the
temperature), which raises on that reading only. Deploying v2 as a canary:
the rehearsal replays the recorded readings to both versions on twins, finds
v2's new error at the switch node, fails the deployment with it before any
command is sent, and quarantines v2; the devices stay on v1."""

from __future__ import annotations

import asyncio
import json

import pytest

from cloud.appkeys import DB
from cloud.models import Command
from test_integration_fleet import Cloud, broker, fleet_config, publish  # noqa: F401 (broker: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.broker]

HEALTH = {"runs": 2, "seconds": 1, "max_error_rate": 0.25}
# what the devices' DHT22 reads: one garbage frame among good ones, then steady
SCRIPT = [[21.0, 40.0], [22.0, 41.0], ["garbage", 40.0], [23.0, 42.0], [24.0, 43.0]]


def flow(threshold: bool) -> dict:
    nodes = [{"id": "n1", "type": "dht", "config": {"pin": 4, "every": "2s", "retries": 0}},
             {"id": "n3", "type": "mqtt_out", "config": {"topic": "climate"}}]
    connections = [{"source": "n1", "target": "n3"}]
    if threshold:
        nodes.insert(1, {"id": "n2", "type": "switch", "config": {"property": "temperature", "op": "gt", "value": 30}})
        connections = [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3", "port": 0}]
    return {"name": "Climate", "definition": {"nodes": nodes, "connections": connections}}


async def test_rehearsal_stops_a_version_that_fails_on_a_recorded_reading(tmp_path, db_url, aiohttp_client, broker):
    from tools.sim.simdevice import SimDevice

    loop = asyncio.get_running_loop()
    cloud = Cloud(aiohttp_client, fleet_config(db_url, broker, loop))
    await cloud.start()
    sims = []
    try:
        for i in range(2):
            made = await cloud.call("POST", "/devices", {"id": f"twin_{i}", "board": "unix-sim", "tags": ["lab"]},
                                    expect=201)
            creds = made["credentials"]
            sims.append(SimDevice(tmp_path / "sim", made["id"], creds["hmac_key"], broker.host, broker.port,
                                  creds["mqtt"]["password"], sensors={"dht": {"4": {"script": SCRIPT}}},
                                  mqtt_ca=creds["mqtt"]["ca"], settings={"health_interval_s": 1}))
        await loop.run_in_executor(None, lambda: [s.start() for s in sims])

        async def online():
            devices = (await cloud.call("GET", "/devices"))["devices"]
            return devices if all(d["online"] for d in devices) else None
        await cloud.wait("both devices online", online, 60)

        v1 = await publish(cloud, flow(threshold=False))
        dep = await cloud.call("POST", "/deployments", {"flow_id": v1["id"], "strategy": "all_at_once",
                                                        "target_tags": ["lab"], "config": {"health": HEALTH}},
                               expect=201)
        assert dep["rehearsal"]["status"] == "pending"  # all at once on two devices: rehearsed by default
        await cloud.call("POST", f"/deployments/{dep['id']}/start")
        first = await cloud.deployment_ends(dep["id"])
        assert first["status"] == "completed", first
        assert first["rehearsal"]["status"] == "passed" and first["rehearsal"]["baseline"] is None

        async def garbage_recorded():
            runs = (await cloud.call("GET", "/devices/twin_0/runs?limit=20"))["runs"]
            seen = [n["out"] for r in runs if r["flow"] == v1["id"] for n in r["nodes"] if n["id"] == "n1"]
            return seen if any("garbage" in (o or "") for o in seen) and len(seen) >= 4 else None
        await cloud.wait("the devices' recorded readings", garbage_recorded, 30)

        # v2: the threshold, which fails on the garbage reading only
        await cloud.call("POST", f"/flows/{v1['id']}/versions/1/restore", {"publish": False})
        await cloud.call("PUT", f"/flows/{v1['id']}", flow(threshold=True))
        await cloud.call("POST", f"/flows/{v1['id']}/publish")
        dep = await cloud.call("POST", "/deployments", {
            "flow_id": v1["id"], "strategy": "canary", "target_tags": ["lab"],
            "config": {"canary_percentage": 50, "canary_delay": "1s", "health": HEALTH}}, expect=201)
        started = await cloud.call("POST", f"/deployments/{dep['id']}/start")
        assert started["status"] == "pending" and started["phase"] == "rehearsal"
        ended = await cloud.deployment_ends(dep["id"], 60)

        assert ended["status"] == "failed", json.dumps(ended["rehearsal"]["boards"])
        assert ended["reason"].startswith("rehearsal: new error: n2: TypeError"), ended["reason"]
        r = ended["rehearsal"]
        assert r["status"] == "failed" and r["baseline"] == {"flow": v1["id"], "version": 1}
        [board] = r["boards"]
        assert board["board"] == "unix-sim" and board["readings_replayed"] >= 4
        assert [(f["kind"], f["node"]) for f in board["findings"]] == [("new_error", "n2")]
        assert board["runs"]["candidate"] == board["runs"]["baseline"] == 20
        # the heap the flow keeps on the twin is measured, and within the board's flow share
        assert 0 < board["flow_heap_bytes"] <= board["peak_heap_bytes"] <= 65_536 // 2, board
        assert {t["status"] for t in ended["targets"]} == {"skipped"}
        kinds = [e["kind"] for e in (await cloud.call("GET", f"/deployments/{dep['id']}/events"))["events"]]
        assert kinds == ["created", "rehearsal", "rehearsal", "status"]
        # no device was sent anything, and v2 is quarantined with the rehearsal's reason
        sent = cloud.client.server.app[DB].call(
            lambda: Command.select().where(Command.id.startswith(dep["id"])).count())
        assert sent == 0
        v2 = (await cloud.call("GET", f"/flows/{v1['id']}/versions"))["versions"][1]
        assert v2["quarantined"]["reason"] == ended["reason"]
        devices = (await cloud.call("GET", "/devices"))["devices"]
        assert {(d["flow"], d["ver"]) for d in devices} == {(v1["id"], 1)}
    finally:
        await loop.run_in_executor(None, lambda: [s.kill() for s in sims])
        await cloud.stop()
        for sim in sims:  # shown when the test fails
            print(f"--- {sim.device_id}\n{sim.log()[-1500:]}")

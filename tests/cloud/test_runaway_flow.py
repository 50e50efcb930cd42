"""A runaway flow against the real cloud, a real Mosquitto and a simulated
device (the real firmware under MicroPython): eight split-then-merge stages,
25 nodes, inside every documented limit, whose messages double at each stage.

The cloud refuses it at publish, pointing at the node where the worst case
passes the board's fan-in budget. Sent to the device anyway (signed with the
device's key, as an older cloud would have sent it), the run ends as failed
with the memory budget's reason, and the device stays online and answers:
its health keeps coming and the next execution through the cloud completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import threading

import pytest

from cloud.appkeys import DB
from cloud.store.rollout import take_seqs
from tools.bench.runaway import ladder, unchecked_program
from test_integration_fleet import CLOUD_PW, Cloud, broker, fleet_config, publish  # noqa: F401 (broker: a fixture)
from tools.infra.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.broker]


SMALL = {"name": "small", "definition": {
    "nodes": [{"id": "i", "type": "inject", "config": {}}, {"id": "c", "type": "counter", "config": {}}],
    "connections": [{"source": "i", "target": "c"}]}}


def _send_anyway(broker, flow: dict, dev: str, key_hex: str, cmd_id: str, cseq: int) -> dict:
    """The refused flow, compiled without the bound and signed with the
    device's key, sent as an inline exec: what an older cloud would send
    (`cseq` a fresh number from the device's counter). Returns the device's
    `done` ack."""
    import paho.mqtt.client as mqtt

    from shared_schema.compiler import CompiledProgram
    from shared_schema.envelope import make_envelope, signed_command

    data = unchecked_program(flow)
    program = CompiledProgram(data, hashlib.sha256(data).hexdigest(), len(data), "flow_runaway", 1, "unix-sim")
    key = bytes.fromhex(key_hex)
    # id and op first: a device short of heap reads only the head
    cmd = signed_command(cmd_id, "exec", {"exec": cmd_id}, dev, key, cseq)
    cmd.update(make_envelope(program, dev, key, cseq))
    done, subscribed = queue.Queue(), threading.Event()

    def on_message(client, userdata, msg):
        ack = json.loads(msg.payload)
        if ack.get("id") == cmd_id and ack.get("state") in ("done", "rejected"):
            done.put(ack)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="old-cloud")
    client.username_pw_set("cloud", CLOUD_PW)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.tls_set_context(client_context(broker.tls.ca))
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe(f"ff/{dev}/ack", qos=1)
        assert subscribed.wait(10)
        client.publish(f"ff/{dev}/cmd", json.dumps(cmd), qos=1).wait_for_publish(10)
        return done.get(timeout=30)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_runaway_fan_out_is_refused_and_never_knocks_a_device_over(tmp_path, db_url, aiohttp_client, broker):
    from tools.sim.simdevice import SimDevice

    loop = asyncio.get_running_loop()
    cloud = Cloud(aiohttp_client, fleet_config(db_url, broker, loop))
    await cloud.start()
    made = await cloud.call("POST", "/devices", {"id": "dev_r", "board": "unix-sim"}, expect=201)
    creds = made["credentials"]
    sim = SimDevice(tmp_path / "sim", "dev_r", creds["hmac_key"], broker.host, broker.port,
                    creds["mqtt"]["password"], settings={"health_interval_s": 1}, mqtt_ca=creds["mqtt"]["ca"])
    try:
        await loop.run_in_executor(None, sim.start)

        async def online():
            d = await cloud.call("GET", "/devices/dev_r")
            return d if d["online"] and d["health"] else None
        await cloud.wait("the device online", online, 60)

        # 1. refused at publish, at the node where the worst case passes the budget
        runaway = ladder(8)
        flow = await cloud.call("POST", "/flows", runaway, expect=201)
        refused = await cloud.call("POST", f"/flows/{flow['id']}/publish", expect=422)
        [problem] = refused["errors"]
        assert problem["pointer"] == "/definition/nodes/10"      # s3a: 2+4+4+8+8 = 26, then 8 more
        assert problem["message"].startswith("memory budget: ") and "makes 34 fan-in runs" in problem["message"]

        # 2. sent anyway: the run fails with the named reason, the device carries on
        [(cseq, _sealed)] = cloud.client.server.app[DB].call(take_seqs, {"dev_r": 1}).values()
        ack = await loop.run_in_executor(None, _send_anyway, broker, runaway, "dev_r", creds["hmac_key"],
                                         "exec-runaway", cseq)
        assert ack["state"] == "done" and ack["status"] == "failed", ack
        assert ack["reason"] == "memory budget: s3a: would make 34 fan-in runs, more than 32 in one run"

        async def run_failed():
            runs = (await cloud.call("GET", "/devices/dev_r/runs?limit=5"))["runs"]
            return [r for r in runs if r["exec"] == "exec-runaway"]
        [run] = await cloud.wait("the runaway's run record", run_failed, 30)
        assert run["status"] == "failed" and run["err"] == ack["reason"] and len(run["nodes"]) <= 25 + 32

        # still reporting: its health goes on ...
        before = (await cloud.call("GET", "/devices/dev_r"))["health"]["uptime_s"]

        async def reporting():
            d = await cloud.call("GET", "/devices/dev_r")
            return d if d["online"] and d["health"]["uptime_s"] > before else None
        health = (await cloud.wait("health after the runaway", reporting, 20))["health"]
        assert health["loop_errors"] == 0 and health["dropped"] == 0

        # ... and the next execution through the cloud completes
        small = await publish(cloud, SMALL)
        exe = await cloud.call("POST", "/executions", {"flow_id": small["id"], "target_devices": ["dev_r"],
                                                       "timeout": "20s"}, expect=201)

        async def executed():
            got = await cloud.call("GET", f"/executions/{exe['id']}")
            return got if got["status"] not in ("pending", "running") and got["targets"][0]["record"] else None
        exe = await cloud.wait("the next execution", executed, 30)
        assert exe["status"] == "completed", exe
        assert [n["id"] for n in exe["targets"][0]["record"]["nodes"]] == ["i", "c"]
        assert "out of memory" not in sim.log()
    finally:
        await loop.run_in_executor(None, sim.kill)
        await cloud.stop()
        print(sim.log()[-6000:])  # shown when the test fails

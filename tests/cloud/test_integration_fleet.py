"""The cloud against a real Mosquitto and five simulated devices running the
real firmware (MicroPython unix port, tools.sim.simdevice): a canary whose
canary device fails its health check rolls everything back and quarantines
its version; a rolling deployment created while one device is off (its
pre-flight says so; `offline: wait`) succeeds on all five once it is back; a
cloud restarted in the middle of a rolling deployment completes it."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime

import pytest

from cloud.app import init_app
from cloud.appkeys import DB
from cloud.config import Config
from cloud.store import keys as key_store

pytestmark = [pytest.mark.slow, pytest.mark.broker]

DEVICES = 5
FAILING = "dev_1"  # a canary whose ADC returns garbage: the canary flow's adc node raises on every run
CLOUD_PW = "cloud-secret-pw"
HEALTH = {"runs": 2, "seconds": 1, "max_error_rate": 0.25}


def temperature_flow(threshold: int) -> dict:
    """Seed 001's flow with its pins named: healthy on every device."""
    return {
        "name": "Temperature Alert",
        "definition": {
            "nodes": [
                {"id": "n1", "type": "dht", "config": {"pin": 4, "every": "2s", "retries": 0}},
                {"id": "n2", "type": "switch", "config": {"property": "temperature", "op": "gt",
                                                          "value": "$threshold"}},
                {"id": "n3", "type": "mqtt_out", "config": {"topic": "alert"}},
            ],
            "connections": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}],
            "variables": [{"name": "threshold", "type": "number", "value": str(threshold)}],
        },
    }


LEVEL_FLOW = {
    "name": "Tank level",
    "definition": {
        "nodes": [
            {"id": "a1", "type": "adc", "config": {"pin": 34, "every": "250ms", "scale": 0.01}},
            {"id": "a2", "type": "switch", "config": {"op": "gt", "value": 50}},
            {"id": "a3", "type": "mqtt_out", "config": {"topic": "level"}},
        ],
        "connections": [{"source": "a1", "target": "a2"}, {"source": "a2", "target": "a3"}],
    },
}


class Cloud:
    """One cloud process's worth of app, on a given database and broker."""

    def __init__(self, aiohttp_client, config):
        self.aiohttp_client = aiohttp_client
        self.config = config
        self.client = None
        self.key = None

    async def start(self):
        app = init_app(self.config)
        self.key = app[DB].call(key_store.create_key, "admin")["key"]
        self.client = await self.aiohttp_client(app)

    async def stop(self):
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def call(self, method, path, body=None, expect=200):
        resp = await self.client.request(method, "/api/v1" + path, json=body, headers={"x-api-key": self.key})
        data = await resp.json(content_type=None)
        assert resp.status == expect, (method, path, resp.status, data)
        return data

    async def wait(self, what, check, timeout_s=60.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = None
        while loop.time() < deadline:
            last = await check()
            if last:
                return last
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; last: {last}")

    async def deployment_ends(self, dep_id, timeout_s=90.0):
        async def ended():
            dep = await self.call("GET", f"/deployments/{dep_id}")
            return dep if dep["status"] in ("completed", "failed", "rolled_back", "cancelled") else None
        return await self.wait(f"deployment {dep_id} to end", ended, timeout_s)


def fleet_config(db_url, broker, loop, **kw) -> Config:
    """The cloud's config for a fleet test: MQTT over TLS end to end (the bridge
    verifies the broker with the CA, and each device gets that CA in its
    provisioning answer), quick ticks, devices added to the broker as provisioned."""
    return Config(db_url=db_url, mqtt_url=f"mqtts://cloud:{CLOUD_PW}@{broker.host}:{broker.port}",
                  mqtt_ca_file=str(broker.tls.ca),
                  secret=b"integration-secret-32-bytes-long", engine_tick_s=0.2, mqtt_reconnect_s=0.2,
                  on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw), **kw)


@pytest.fixture
def broker(tmp_path):
    from tools.infra.broker import mosquitto_path

    if not mosquitto_path():
        pytest.skip("needs Mosquitto (make system installs it)")
    from tools.infra.broker import start_broker

    b = start_broker(tmp_path / "broker", users={"cloud": CLOUD_PW})
    yield b
    b.stop()


async def test_canary_rollback_then_rolling_then_restart_mid_rollout(tmp_path, db_url, aiohttp_client, broker):
    from tools.sim.simdevice import SimDevice

    loop = asyncio.get_running_loop()
    config = fleet_config(db_url, broker, loop)
    cloud = Cloud(aiohttp_client, config)
    await cloud.start()
    sims = []
    try:
        for i in range(DEVICES):
            made = await cloud.call("POST", "/devices", {"id": f"dev_{i}", "board": "unix-sim", "tags": ["lab"]},
                                    expect=201)
            creds = made["credentials"]
            assert creds["mqtt"]["ca"] == broker.ca_pem()
            sensors = {"dht": {"4": {"profile": "sine"}}, "adc": {"34": "garbage" if made["id"] == FAILING else 4000}}
            sims.append(SimDevice(tmp_path / "sim", made["id"], creds["hmac_key"], broker.host, broker.port,
                                  creds["mqtt"]["password"], sensors=sensors, mqtt_ca=creds["mqtt"]["ca"],
                                  settings={"health_interval_s": 1}))
        await loop.run_in_executor(None, lambda: [s.start() for s in sims])

        async def all_online():
            devices = (await cloud.call("GET", "/devices"))["devices"]
            return devices if all(d["online"] for d in devices) else None
        await cloud.wait("five devices online", all_online, 60)

        temp = await publish(cloud, temperature_flow(30))
        level = await publish(cloud, LEVEL_FLOW)

        # 0. a baseline everywhere, so a rollback has something to go back to
        base = await run_deployment(cloud, temp["id"], "all_at_once", {"health": HEALTH})
        assert base["status"] == "completed", base
        await devices_run(cloud, temp["id"], 1)

        # 1. canary: dev_0 and dev_1 are the canaries (40 %); dev_1 fails its health check
        dep = await run_deployment(cloud, level["id"], "canary", {
            "canary_percentage": 40, "canary_delay": "1s", "timeout": "60s", "health": HEALTH})
        assert dep["status"] == "rolled_back", dep
        by_id = {t["device_id"]: t for t in dep["targets"]}
        assert by_id[FAILING]["status"] == "failed" and "error_rate" in by_id[FAILING]["reason"]
        assert by_id["dev_0"]["status"] == "rolled_back"
        assert [by_id[f"dev_{i}"]["status"] for i in (2, 3, 4)] == ["skipped"] * 3
        await devices_run(cloud, temp["id"], 1)  # every device is back on the baseline
        level_v1 = (await cloud.call("GET", f"/flows/{level['id']}/versions"))["versions"][0]
        assert level_v1["quarantined"]["deployment_id"] == dep["id"]  # "latest" no longer means it

        # 2. rolling: a new version of the temperature flow, on all five
        await cloud.call("POST", f"/flows/{temp['id']}/versions/1/restore", {"publish": False})
        await cloud.call("PUT", f"/flows/{temp['id']}", temperature_flow(28))
        await cloud.call("POST", f"/flows/{temp['id']}/publish")
        # dev_4 (the last batch) is off when it starts, and comes back once its batch is sent
        await loop.run_in_executor(None, sims[4].stop)
        body = {"flow_id": temp["id"], "strategy": "rolling", "target_tags": ["lab"],
                "config": {"batch_size": 2, "batch_delay": "500ms", "timeout": "60s", "health": HEALTH}}
        async def dev_4_offline():
            return not (await cloud.call("GET", "/devices/dev_4"))["online"]
        await cloud.wait("dev_4 offline", dev_4_offline, 15)
        dry = await cloud.call("POST", "/deployments?dry_run=true", body)
        assert dry["preflight"]["counts"]["offline"] == 1 and dry["refused"] is None
        assert dry["preflight"]["targets"][0]["device_id"] == "dev_4"
        dep = await cloud.call("POST", "/deployments", body, expect=201)  # offline: "wait", the default
        await cloud.call("POST", f"/deployments/{dep['id']}/start")

        async def last_batch_sent():
            got = await cloud.call("GET", f"/deployments/{dep['id']}")
            return got if got["targets"][4]["status"] == "deploying" else None
        await cloud.wait("the last batch", last_batch_sent)
        await asyncio.sleep(1.0)
        await loop.run_in_executor(None, sims[4].start)  # back online: it gets what it missed
        dep = await cloud.deployment_ends(dep["id"])
        assert dep["status"] == "completed" and dep["completed_targets"] == DEVICES, dep
        await devices_run(cloud, temp["id"], 2)

        # 3. the cloud restarts in the middle of a rolling deployment
        await cloud.call("POST", f"/flows/{temp['id']}/versions/2/restore", {"publish": False})
        await cloud.call("PUT", f"/flows/{temp['id']}", temperature_flow(26))
        await cloud.call("POST", f"/flows/{temp['id']}/publish")
        dep = await cloud.call("POST", "/deployments", {
            "flow_id": temp["id"], "strategy": "rolling", "target_tags": ["lab"],
            "config": {"batch_size": 2, "batch_delay": "1s", "health": HEALTH}}, expect=201)
        await cloud.call("POST", f"/deployments/{dep['id']}/start")

        async def first_batch_done():
            got = await cloud.call("GET", f"/deployments/{dep['id']}")
            return got if got["completed_targets"] >= 2 else None
        mid = await cloud.wait("the first batch", first_batch_done)
        assert mid["status"] == "running" and mid["completed_targets"] < DEVICES, mid  # a restart *mid*-deployment
        await cloud.stop()  # killed mid-deployment: the devices carry on, their acks wait in the broker
        await asyncio.sleep(1.5)
        cloud = Cloud(aiohttp_client, config)
        await cloud.start()
        final = await cloud.deployment_ends(dep["id"])
        assert final["status"] == "completed" and final["completed_targets"] == DEVICES, final
        devices = await devices_run(cloud, temp["id"], 3)
        seqs = {t["device_id"]: t["seq"] for t in final["targets"]}
        assert all(d["seq"] == seqs[d["id"]] for d in devices)  # each device took exactly that program

        # 4. blue-green: staged everywhere, then switched
        await cloud.call("POST", f"/flows/{temp['id']}/versions/3/restore", {"publish": False})
        await cloud.call("PUT", f"/flows/{temp['id']}", temperature_flow(24))
        await cloud.call("POST", f"/flows/{temp['id']}/publish")
        dep = await run_deployment(cloud, temp["id"], "blue_green", {"switch_delay": "500ms", "health": HEALTH})
        assert dep["status"] == "completed" and dep["completed_targets"] == DEVICES, dep
        assert {t["step"] for t in dep["targets"]} == {"activate"}
        await devices_run(cloud, temp["id"], 4)

        # 5. an execution: the flow run once everywhere, with an override, recorded per node
        exe = await cloud.call("POST", "/executions", {"flow_id": temp["id"], "all": True, "timeout": "20s",
                                                       "overrides": {"vars": {"threshold": -100}}}, expect=201)

        async def executed():  # a poller that stops at the status, as seed 000's user does
            got = await cloud.call("GET", f"/executions/{exe['id']}")
            return got if got["status"] not in ("pending", "running") else None
        exe = await cloud.wait("the execution", executed, 30)
        assert exe["status"] == "completed" and exe["version"] == 4, exe
        assert all(t["record"] for t in exe["targets"]), exe  # the log is there when the status says so
        nodes = exe["targets"][0]["record"]["nodes"]
        assert [n["id"] for n in nodes] == ["n1", "n2", "n3"]  # threshold -100: the alert branch ran
        assert nodes[1]["port"] == 0

        # the devices' run reports were stored, node by node
        async def runs_stored():
            runs = (await cloud.call("GET", "/devices/dev_0/runs?limit=5"))["runs"]
            return runs if runs and runs[0]["nodes"] else None
        runs = await cloud.wait("run records", runs_stored, 15)
        assert runs[0]["flow"] == temp["id"] and runs[0]["nodes"][0]["type"] == "dht"

        # 6. rate control: at most 120 deploys a minute, so the five go out over two seconds
        await cloud.call("POST", f"/flows/{temp['id']}/versions/4/restore", {"publish": False})
        await cloud.call("PUT", f"/flows/{temp['id']}", temperature_flow(22))
        await cloud.call("POST", f"/flows/{temp['id']}/publish")
        dep = await run_deployment(cloud, temp["id"], "all_at_once", {"max_per_minute": 120, "timeout": "60s",
                                                                      "health": HEALTH})
        assert dep["status"] == "completed" and dep["rate_per_minute"] == 120, dep
        events = (await cloud.call("GET", f"/deployments/{dep['id']}/events"))["events"]
        sent = sorted(datetime.fromisoformat(e["at"]) for e in events if e["kind"] == "send")
        assert len(sent) == DEVICES and (sent[-1] - sent[0]).total_seconds() >= 1.9, sent
        await devices_run(cloud, temp["id"], 5)
    finally:
        await loop.run_in_executor(None, lambda: [s.kill() for s in sims])
        await cloud.stop()
        for sim in sims:  # shown when the test fails
            print(f"--- {sim.device_id}\n{sim.log()[-1500:]}")


async def publish(cloud, body) -> dict:
    flow = await cloud.call("POST", "/flows", copy.deepcopy(body), expect=201)
    return await cloud.call("POST", f"/flows/{flow['id']}/publish")


async def run_deployment(cloud, flow_id, strategy, config) -> dict:
    dep = await cloud.call("POST", "/deployments", {"flow_id": flow_id, "strategy": strategy,
                                                    "target_tags": ["lab"], "config": config}, expect=201)
    await cloud.call("POST", f"/deployments/{dep['id']}/start")
    return await cloud.deployment_ends(dep["id"])


async def devices_run(cloud, flow_id, version) -> list[dict]:
    """Wait until every device reports running (not on trial) that version."""
    async def there():
        devices = (await cloud.call("GET", "/devices"))["devices"]
        ok = all(d["online"] and d["flow"] == flow_id and d["ver"] == version and not d["trial"] for d in devices)
        return devices if ok else None
    return await cloud.wait(f"every device on {flow_id} v{version}", there, 30)

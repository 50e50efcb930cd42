"""The MQTT bridge against a real Mosquitto: it hears a device (with the
device's own credentials, under the broker's ACL), and reconnects by itself
when the broker goes away and comes back. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from cloud.app import init_app
from cloud.appkeys import BRIDGE, DB
from cloud.config import Config
from cloud.store import keys as key_store
from tools.infra.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.broker]


@pytest.fixture
def db_url(sqlite_then_postgres):
    return sqlite_then_postgres


@pytest.fixture
def broker(tmp_path):
    from tools.infra.broker import mosquitto_path

    if not mosquitto_path():
        pytest.skip("needs Mosquitto")
    from tools.infra.broker import start_broker

    b = start_broker(tmp_path / "broker", users={"cloud": "cloud-pw"})
    yield b
    b.stop()


async def _eventually(fn, timeout_s=15.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        got = await fn()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def _say(broker, creds, status):
    mqtt = creds["mqtt"]
    async with aiomqtt.Client(broker.host, broker.port, username=mqtt["username"], password=mqtt["password"],
                              identifier=mqtt["client_id"], tls_context=client_context(broker.tls.ca)) as device:
        await device.publish(f"ff/{mqtt['username']}/status", json.dumps(status), qos=1, retain=True)


async def test_the_bridge_hears_devices_and_reconnects_after_a_broker_restart(db_url, aiohttp_client, broker):
    loop = asyncio.get_running_loop()
    config = Config(db_url=db_url, mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}",
                    mqtt_ca_file=str(broker.tls.ca),
                    secret=b"r" * 32, engine_tick_s=0.1, mqtt_reconnect_s=0.2,
                    on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw))
    app = init_app(config)
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)
    headers = {"x-api-key": key}
    made = await (await client.post("/api/v1/devices", json={"id": "rc1", "board": "unix-sim"},
                                    headers=headers)).json()

    async def device_state(heap):
        doc = await (await client.get("/api/v1/devices/rc1", headers=headers)).json()
        return doc if doc["online"] and doc["heap"] == heap else None

    await _say(broker, made["credentials"], {"state": "online", "board": "unix-sim", "heap": 1000})
    await _eventually(lambda: device_state(1000))

    await loop.run_in_executor(None, broker.restart)  # same port, same users: the old link is dead
    # only a bridge that reconnected by itself can hear this
    await _say(broker, made["credentials"], {"state": "online", "board": "unix-sim", "heap": 2000})
    doc = await _eventually(lambda: device_state(2000))
    assert doc["state"] == "online" and app[BRIDGE].connected.is_set()


async def test_a_device_that_comes_back_is_sent_what_it_has_not_answered_at_once(db_url, aiohttp_client, broker):
    """A broker that restarted may have lost a command, or the device's ack
    (issue 10, item 6: recovery waited for the 30 s resend). The device was
    never seen offline, so only its live "online" tells the cloud it came back."""
    loop = asyncio.get_running_loop()
    config = Config(db_url=db_url, mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}",
                    mqtt_ca_file=str(broker.tls.ca),
                    secret=b"r" * 32, engine_tick_s=0.1, mqtt_reconnect_s=0.2, resend_after_s=30,
                    on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw))
    app = init_app(config)
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)
    headers = {"x-api-key": key}

    async def api(method, path, body=None):
        resp = await client.request(method, "/api/v1" + path, json=body, headers=headers)
        assert resp.status < 300, await resp.text()
        return await resp.json()

    await _eventually(lambda: asyncio.sleep(0, app[BRIDGE].connected.is_set()))
    mqtt = (await api("POST", "/devices", {"id": "rs1", "board": "unix-sim"}))["credentials"]["mqtt"]
    flow = await api("POST", "/flows", {"name": "one", "definition": {
        "nodes": [{"id": "a1", "type": "adc", "config": {"pin": 34, "every": "1s"}}], "connections": []}})
    await api("POST", f"/flows/{flow['id']}/publish")
    online = json.dumps({"state": "online", "board": "unix-sim"})

    async def device_session(clean: bool):
        dev = aiomqtt.Client(broker.host, broker.port, username=mqtt["username"], password=mqtt["password"],
                             identifier=mqtt["client_id"], clean_session=clean,
                             tls_context=client_context(broker.tls.ca))
        await dev.__aenter__()
        await dev.subscribe("ff/rs1/cmd", qos=1)
        await dev.publish("ff/rs1/status", online, qos=1, retain=True)
        return dev

    async def next_command(dev, timeout_s):
        async with asyncio.timeout(timeout_s):
            async for message in dev.messages:
                return json.loads(message.payload)

    dev = await device_session(clean=False)

    async def is_online():
        return (await api("GET", "/devices/rs1"))["online"]
    await _eventually(is_online)
    dep = await api("POST", "/deployments", {"flow_id": flow["id"], "strategy": "all_at_once",
                                             "target_devices": ["rs1"]})
    await api("POST", f"/deployments/{dep['id']}/start")
    first = await next_command(dev, 10)
    assert first["op"] == "deploy"
    # The device never answers and goes away; the broker restarts; the cloud
    # is back first and sends again what it can, to a device not there, whose
    # session (and with it the command) is then lost, as a kill -9 of the
    # broker within its autosave interval loses it; the device comes back.
    await dev.__aexit__(None, None, None)
    await loop.run_in_executor(None, broker.restart)
    await _eventually(lambda: asyncio.sleep(0, app[BRIDGE].connected.is_set()))
    await asyncio.sleep(1.0)
    dev = await device_session(clean=True)
    try:
        again = await next_command(dev, 5)  # not after resend_after_s (30 s)
        assert again["id"] == first["id"] and again["op"] == "deploy"
    finally:
        await dev.__aexit__(None, None, None)


async def test_a_run_report_the_database_refuses_is_dropped_without_holding_the_others(db_url, aiohttp_client,
                                                                                        broker):
    """Text a database refuses (a lone surrogate; NUL on PostgreSQL) in a
    device's report spoils its transaction: the bridge finds it, logs and
    acks it (a resend would be refused again), and stores the rest."""
    loop = asyncio.get_running_loop()
    config = Config(db_url=db_url, mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}",
                    mqtt_ca_file=str(broker.tls.ca),
                    secret=b"r" * 32, engine_tick_s=0.1, mqtt_reconnect_s=0.2,
                    on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw))
    app = init_app(config)
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)
    headers = {"x-api-key": key}
    made = await (await client.post("/api/v1/devices", json={"id": "bad1", "board": "unix-sim"},
                                    headers=headers)).json()
    await _eventually(lambda: asyncio.sleep(0, app[BRIDGE].connected.is_set()))
    mqtt = made["credentials"]["mqtt"]

    def report(run: int, flow: str) -> str:
        return json.dumps({"dev": "bad1", "dropped": 0, "runs": [{"run": run, "flow": flow, "status": "completed"}]})

    async with aiomqtt.Client(broker.host, broker.port, username=mqtt["username"], password=mqtt["password"],
                              identifier=mqtt["client_id"], tls_context=client_context(broker.tls.ca)) as device:
        for run, flow in [(1, "good"), (2, "bad\ud800"), (3, "nul\x00"), (4, "good")]:
            await device.publish("ff/bad1/runs", report(run, flow), qos=1)
    # SQLite stores a NUL; PostgreSQL refuses it
    expected = [1, 4] if db_url.startswith("postgresql") else [1, 3, 4]

    async def stored():
        resp = await client.get("/api/v1/devices/bad1/runs", headers=headers)
        runs = sorted(r["run"] for r in (await resp.json())["runs"])
        return runs if len(runs) >= len(expected) else None
    assert await _eventually(stored) == expected
    assert app[BRIDGE].refused_runs == 4 - len(expected)


async def test_the_bridge_refuses_a_broker_its_ca_did_not_sign(tmp_path, aiohttp_client, broker, caplog):
    """mqtts:// with another installation's CA: the handshake fails, the
    bridge never connects (so never sends the cloud's password) and says why."""
    from tools.infra.tls import ensure_tls

    other = ensure_tls(tmp_path / "other")
    config = Config(db_url=f"sqlite:///{tmp_path / 'c.db'}", secret=b"r" * 32, mqtt_reconnect_s=0.2,
                    mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}", mqtt_ca_file=str(other.ca))
    app = init_app(config)
    await aiohttp_client(app)
    with pytest.raises(AssertionError, match="not reached"):
        await _eventually(lambda: asyncio.sleep(0, app[BRIDGE].connected.is_set()), timeout_s=2)
    assert "certificate verify failed" in caplog.text


def _big_flow(nodes: int = 40) -> dict:
    """A chain of change nodes whose program is over MAX_INLINE_BYTES: it travels in chunks."""
    chain = [{"id": f"c{i:02d}", "type": "change",
              "config": {"property": "value", "action": "offset", "value": i + 0.125}} for i in range(nodes)]
    return {"name": "long chain", "definition": {
        "nodes": [{"id": "a1", "type": "adc", "config": {"pin": 34, "every": "1s"}}, *chain],
        "connections": [{"source": a["id"], "target": b["id"]}
                        for a, b in zip([{"id": "a1"}, *chain], chain)]}}


async def test_a_device_that_lost_a_chunk_is_sent_the_rest_again_at_once(aiohttp_client, tmp_path, broker):
    """A device refuses chunk i because it wants an earlier one (lost on the
    way: an inbox that overflowed while the device waited on its own
    publish). The cloud sends the chunks from the wanted one again at once,
    not after resend_after_s, and once for the chunks refused behind it."""
    loop = asyncio.get_running_loop()
    config = Config(db_url=f"sqlite:///{tmp_path / 'cloud.db'}",
                    mqtt_url=f"mqtts://cloud:cloud-pw@{broker.host}:{broker.port}",
                    mqtt_ca_file=str(broker.tls.ca), secret=b"r" * 32, engine_tick_s=0.1,
                    mqtt_reconnect_s=0.2, resend_after_s=60, rehearsal_default=False,
                    on_provision=lambda dev, pw: loop.run_in_executor(None, broker.add_user, dev, pw))
    app = init_app(config)
    key = app[DB].call(key_store.create_key, "admin")["key"]
    client = await aiohttp_client(app)

    async def api(method, path, body=None):
        resp = await client.request(method, "/api/v1" + path, json=body, headers={"x-api-key": key})
        assert resp.status < 300, await resp.text()
        return await resp.json()

    await _eventually(lambda: asyncio.sleep(0, app[BRIDGE].connected.is_set()))
    mqtt = (await api("POST", "/devices", {"id": "ck1", "board": "unix-sim"}))["credentials"]["mqtt"]
    flow = await api("POST", "/flows", _big_flow())
    await api("POST", f"/flows/{flow['id']}/publish")
    async with aiomqtt.Client(broker.host, broker.port, username=mqtt["username"], password=mqtt["password"],
                              identifier=mqtt["client_id"], tls_context=client_context(broker.tls.ca)) as dev:
        await dev.subscribe("ff/ck1/cmd", qos=1)
        await dev.publish("ff/ck1/status", json.dumps({"state": "online", "board": "unix-sim"}), qos=1, retain=True)
        await _eventually(lambda: _online(api))
        dep = await api("POST", "/deployments", {"flow_id": flow["id"], "strategy": "all_at_once",
                                                 "target_devices": ["ck1"]})
        await api("POST", f"/deployments/{dep['id']}/start")

        got: list[dict] = []

        async def take(n, timeout_s):
            async with asyncio.timeout(timeout_s):
                async for message in dev.messages:
                    got.append(json.loads(message.payload))
                    if len(got) >= n:
                        return
        await take(1, 10)
        envelope = got[0]
        assert envelope["op"] == "deploy" and envelope["chunks"] >= 3, envelope
        n = envelope["chunks"]
        await take(1 + n, 10)
        assert [m["i"] for m in got[1:]] == list(range(n))
        # chunk 1 was lost: the device refuses chunks 2.. each with next 1
        for i in range(2, n):
            await dev.publish("ff/ck1/ack", json.dumps({
                "id": f"{envelope['id']}.{i}", "op": "chunk", "state": "rejected", "next": 1,
                "reason": f"out of order or missing: want chunk 1, got {i}"}), qos=1)
        got.clear()
        await take(n - 1, 5)  # long before resend_after_s (60 s)
        assert [m["i"] for m in got] == list(range(1, n)) and {m["xfer"] for m in got} == {envelope["id"]}
        # one round for all the refusals behind the lost chunk: nothing more comes
        with pytest.raises(TimeoutError):
            await take(n, 1.5)
        assert [m["i"] for m in got] == list(range(1, n))


async def _online(api):
    return (await api("GET", "/devices/ck1"))["online"]

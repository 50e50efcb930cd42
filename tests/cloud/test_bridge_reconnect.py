"""The MQTT bridge against a real Mosquitto: it hears a device (with the
device's own credentials, under the broker's ACL), and reconnects by itself
when the broker goes away and comes back."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from cloud.app import init_app
from cloud.appkeys import BRIDGE, DB
from cloud.config import Config
from cloud.store import keys as key_store

pytestmark = [pytest.mark.slow, pytest.mark.broker]


@pytest.fixture
def broker(tmp_path):
    from tools.broker import mosquitto_path

    if not mosquitto_path():
        pytest.skip("needs Mosquitto")
    from tools.broker import start_broker

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
                              identifier=mqtt["client_id"]) as device:
        await device.publish(f"ff/{mqtt['username']}/status", json.dumps(status), qos=1, retain=True)


async def test_the_bridge_hears_devices_and_reconnects_after_a_broker_restart(db_url, aiohttp_client, broker):
    loop = asyncio.get_running_loop()
    config = Config(db_url=db_url, mqtt_url=f"mqtt://cloud:cloud-pw@{broker.host}:{broker.port}",
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

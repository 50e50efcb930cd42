"""tools/infra/broker.py: both brokers authenticate users and keep devices to ff/<dev>/#."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from mqtt_cloud import Cloud
from tools.infra.broker import mosquitto_path, start_broker
from tools.infra.tls import client_context, ensure_tls

KINDS = ["mosquitto", "amqtt"]


def _start(kind, tmp_path):
    if kind == "mosquitto" and not mosquitto_path():
        print("WARNING: mosquitto not installed; this case runs on amqtt instead")
    return start_broker(tmp_path / kind, users={"cloud": "cloudpw", "dev1": "pw1"}, prefer=kind)


@pytest.mark.broker
@pytest.mark.parametrize("kind", KINDS)
def test_device_acl_and_users(kind, tmp_path):
    with _start(kind, tmp_path) as broker:
        assert broker.kind == kind or not mosquitto_path()
        broker.add_user("dev2", "pw2")
        cloud = Cloud(broker)
        spy = Cloud(broker, user="dev2", password="pw2", subscribe="ff/dev1/#", client_id="dev2")
        dev1 = Cloud(broker, user="dev1", password="pw1", subscribe="ff/dev1/cmd", client_id="dev1")
        try:
            dev1.publish("ff/dev1/status", {"state": "online"}, retain=True)
            dev1.publish("ff/dev2/status", {"state": "forged"})  # not its subtree: dropped
            cloud.send("dev1", {"id": "c1", "op": "ping"})
            assert cloud.wait_json("ff/dev1/status")["state"] == "online"
            assert dev1.wait_json("ff/dev1/cmd")["id"] == "c1"
            time.sleep(0.5)
            assert cloud.json_on("ff/dev2/status") == []
            assert spy.json_on("ff/dev1/status") == [] and spy.json_on("ff/dev1/cmd") == []
        finally:
            for c in (cloud, spy, dev1):
                c.close()


@pytest.mark.broker
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_password_refused_and_restart_keeps_users(kind, tmp_path):
    with _start(kind, tmp_path) as broker:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.username_pw_set("dev1", "wrong")
        c.tls_set_context(client_context(broker.tls.ca))  # so it is the password that is refused
        rc = None
        try:
            c.connect(broker.host, broker.port)
            c.loop_start()
            time.sleep(0.5)
            rc = c.is_connected()
        finally:
            c.loop_stop()
        assert rc is False
        port = broker.port
        broker.restart()
        assert broker.port == port
        cloud = Cloud(broker)
        cloud.close()


@pytest.mark.broker
@pytest.mark.parametrize("kind", KINDS)
def test_a_broker_started_with_a_fleet_of_accounts_knows_every_one(kind, tmp_path):
    # 40 device accounts are ~40 KB of $CONTROL commands, over the broker's
    # packet limit in one message: Mosquitto dropped it and start_broker failed
    users = {f"d{i:02d}": f"pw{i}" for i in range(40)}
    with start_broker(tmp_path / kind, users={"cloud": "cloudpw", **users}, prefer=kind) as broker:
        for dev in ("d00", "d39"):
            c = Cloud(broker, user=dev, password=users[dev], subscribe=f"ff/{dev}/cmd", client_id=dev)
            c.close()


def _connects(broker, ca_file=None) -> bool:
    """Does a paho client (TLS trusting ca_file, or plain) get a CONNACK as `cloud`?"""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.username_pw_set("cloud", "cloudpw")
    if ca_file:
        c.tls_set_context(client_context(ca_file))
    try:
        c.connect(broker.host, broker.port)
        c.loop_start()
        deadline = time.monotonic() + 3
        while not c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        return c.is_connected()
    except OSError:  # ssl.SSLCertVerificationError included: the handshake refused it
        return False
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.mark.broker
@pytest.mark.parametrize("kind", KINDS)
def test_broker_speaks_tls_only_with_its_own_certificate(kind, tmp_path):
    other_ca = ensure_tls(tmp_path / "other").ca
    with _start(kind, tmp_path) as broker:
        assert broker.url.startswith("mqtts://")
        assert _connects(broker, broker.tls.ca)
        assert not _connects(broker)            # no plain MQTT listener
        assert not _connects(broker, other_ca)  # a certificate no other CA vouches for
    for key in (broker.tls.key, broker.tls.ca_key):
        assert key.stat().st_mode & 0o777 == 0o600, key


@pytest.mark.broker
@pytest.mark.parametrize("kind", KINDS)
def test_plain_mqtt_only_when_asked(kind, tmp_path):
    with start_broker(tmp_path / kind, users={"cloud": "cloudpw"}, prefer=kind, tls=False) as broker:
        assert broker.tls is None and broker.url.startswith("mqtt://")
        assert _connects(broker)

"""tools/infra/broker.py start-up: a port taken between picking and binding it, a
restart that must keep its port, and Mosquitto's per-client queue."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tools.infra import broker as broker_mod
from tools.infra.broker import PortTaken, mosquitto_path, start_broker
from tools.infra.tls import client_context

KINDS = [pytest.param("mosquitto", marks=pytest.mark.skipif(not mosquitto_path(), reason="mosquitto not installed")),
         "amqtt"]
USERS = {"cloud": "cloudpw", "dev1": "pw1"}


def squat(port: int = 0) -> socket.socket:
    """Another process's listener on a port (while it listens nobody else can bind it;
    SO_REUSEADDR only so that the broker's own closed connections don't keep us out)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def _tls(client, broker) -> None:
    """TLS as the broker listens (the default): trust its CA only."""
    if broker.tls:
        client.tls_set_context(client_context(broker.tls.ca))


def connect_rc(broker, user="cloud", password="cloudpw", clean: bool = True, client_id: str = "") -> int:
    """The CONNACK reason code our credentials get from whoever listens on broker.port (-1: no answer)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{time.monotonic_ns()}",
                    clean_session=clean)
    c.username_pw_set(user, password)
    _tls(c, broker)
    got = threading.Event()
    rc = []
    c.on_connect = lambda cl, u, flags, reason, props=None: (rc.append(reason.value), got.set())
    try:
        c.connect(broker.host, broker.port, keepalive=10)
        c.loop_start()
        got.wait(5)
    except OSError:
        return -1
    finally:
        c.loop_stop()
        c.disconnect()
    return rc[0] if rc else -1


@pytest.mark.parametrize("kind", KINDS)
def test_a_port_taken_before_the_broker_binds_it_is_retried_on_a_fresh_one(kind, tmp_path, monkeypatch):
    squatter = squat()
    taken = squatter.getsockname()[1]
    picks = iter([taken, taken])  # the race, twice in a row
    real = broker_mod.free_port
    monkeypatch.setattr(broker_mod, "free_port", lambda: next(picks, None) or real())
    try:
        with start_broker(tmp_path / kind, users=USERS, prefer=kind) as broker:
            assert broker.kind == kind
            assert broker.port != taken
            assert connect_rc(broker) == 0  # our broker answers, not the squatter
            assert broker.port_pinned  # devices know this port now
    finally:
        squatter.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_restart_waits_for_its_own_port(kind, tmp_path):
    with start_broker(tmp_path / kind, users=USERS, prefer=kind) as broker:
        port = broker.port
        broker.stop()
        squatter = squat(port)
        threading.Timer(1.0, squatter.close).start()  # someone holds it for a second
        broker.start()
        assert broker.port == port
        assert connect_rc(broker) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_restart_whose_port_stays_taken_says_so(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(broker_mod, "PINNED_RETRY_S", 1.0)
    broker = start_broker(tmp_path / kind, users=USERS, prefer=kind)
    port = broker.port
    broker.stop()
    squatter = squat(port)
    try:
        with pytest.raises(PortTaken, match=f"port {port} stayed taken"):
            broker.start()
        assert broker.port == port
    finally:
        squatter.close()
        broker.stop()


def test_a_port_the_caller_chose_is_not_swapped_silently(tmp_path, monkeypatch):
    monkeypatch.setattr(broker_mod, "PINNED_RETRY_S", 0.5)
    squatter = squat()
    port = squatter.getsockname()[1]
    try:
        with pytest.raises(PortTaken):
            start_broker(tmp_path / "b", users=USERS, prefer="amqtt", port=port)
    finally:
        squatter.close()


@pytest.mark.skipif(not mosquitto_path(), reason="mosquitto not installed")
def test_mosquitto_queues_a_big_batch_for_an_offline_persistent_client(tmp_path):
    """The cloud's session is persistent: 2,500 acks sent while it is away all
    wait for it (Mosquitto's default queue of 1,000 would drop the rest)."""
    count = 2500
    with start_broker(tmp_path / "m", users=USERS, prefer="mosquitto") as broker:
        cloud_id = "fleetflow-cloud-test"
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cloud_id, clean_session=False)
        sub.username_pw_set("cloud", "cloudpw")
        _tls(sub, broker)
        subscribed = threading.Event()
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.on_connect = lambda c, *a: c.subscribe("ff/+/ack", qos=1)
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        assert subscribed.wait(5)
        sub.disconnect()
        sub.loop_stop()

        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev1")
        pub.username_pw_set("dev1", "pw1")
        _tls(pub, broker)
        pub.max_queued_messages_set(0)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        infos = [pub.publish("ff/dev1/ack", str(i), qos=1) for i in range(count)]
        for info in infos:
            info.wait_for_publish(20)
        pub.disconnect()
        pub.loop_stop()

        got: set[int] = set()
        done = threading.Event()

        def on_message(c, u, msg):
            got.add(int(msg.payload))
            if len(got) == count:
                done.set()
        sub2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cloud_id, clean_session=False)
        sub2.username_pw_set("cloud", "cloudpw")
        _tls(sub2, broker)
        sub2.on_message = on_message
        sub2.connect(broker.host, broker.port)
        sub2.loop_start()
        try:
            done.wait(30)
        finally:
            sub2.disconnect()
            sub2.loop_stop()
        assert len(got) == count, f"{count - len(got)} of {count} queued acks were dropped"


def test_amqtt_frees_its_port_even_when_its_own_shutdown_hangs(tmp_path, monkeypatch):
    """amqtt's shutdown can hang dropping a device's session (seen with the
    MicroPython agent connected): stop() still closes the listener, so a
    restart can bind the same port at once."""
    import asyncio

    from amqtt.broker import Broker as Amqtt

    async def hang(self):
        await asyncio.sleep(3600)
    monkeypatch.setattr(broker_mod, "AMQTT_SHUTDOWN_S", 0.3)
    broker = start_broker(tmp_path / "a", users=USERS, prefer="amqtt")
    try:
        port = broker.port
        monkeypatch.setattr(Amqtt, "shutdown", hang)  # the fault, injected on purpose
        broker.stop()
        squat(port).close()  # nobody listens on it any more
        monkeypatch.undo()
        broker.start()
        assert broker.port == port and connect_rc(broker) == 0
    finally:
        broker.stop()

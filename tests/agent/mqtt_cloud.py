"""A small paho-mqtt client that plays the cloud in the agent tests."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt

from tools.infra.tls import client_context


class Cloud:
    def __init__(self, broker, user: str = "cloud", password: str = "cloudpw", subscribe: str = "ff/#",
                 client_id: str | None = None):
        """client_id: default `<user>-<n>`; a device's account takes only its own id (pass it)."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cv = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{id(self)}")
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        # connected: set once the subscription is in (after every reconnect),
        # cleared when the link drops; publish waits for it.
        self.connected = threading.Event()

        def on_connect(c, u, f, rc, p=None):
            if subscribe:
                c.subscribe(subscribe, qos=1)
            else:
                self.connected.set()
        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        if broker.tls:  # MQTT over TLS: trust the broker's CA only, check its name
            self.client.tls_set_context(client_context(broker.tls.ca))
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("cloud client did not connect and subscribe")

    def _on_message(self, client, userdata, msg):
        with self._cv:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self._cv.notify_all()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.wait_connected()  # after a broker restart paho reconnects by itself, a moment later
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def wait_connected(self, timeout: float = 30.0) -> None:
        if not self.connected.wait(timeout):
            raise TimeoutError(f"cloud client not connected to the broker within {timeout}s")

    def wait_disconnected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connected.is_set():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"cloud client did not see the broker go within {timeout}s")
            time.sleep(0.02)

    def send(self, dev: str, cmd: dict) -> None:
        self.publish(f"ff/{dev}/cmd", cmd)

    def json_on(self, topic: str) -> list[dict]:
        with self._cv:
            out = []
            for t, p, _r in self.messages:
                if t == topic:
                    try:
                        out.append(json.loads(p))
                    except ValueError:
                        pass
            return out

    def wait_json(self, topic: str, pred=lambda m: True, timeout: float = 20.0) -> dict:
        """The first JSON message on `topic` matching pred (including earlier ones)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for t, p, _r in self.messages:
                    if t == topic:
                        try:
                            m = json.loads(p)
                        except ValueError:
                            continue
                        if pred(m):
                            return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(t, p[:200]) for t, p, _ in self.messages if t == topic][-10:]
                    raise TimeoutError(f"no message on {topic} matching within {timeout}s; last seen: {seen}")
                self._cv.wait(min(left, 0.5))

    def wait_ack(self, dev: str, cmd_id: str, state: str, timeout: float = 20.0) -> dict:
        return self.wait_json(f"ff/{dev}/ack", lambda m: m.get("id") == cmd_id and m.get("state") == state, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

"""Watch a Stack's broker as an admin: every message on the topics asked for.

    with Watch(stack, "ff/#", "homeassistant/#") as watch:
        ...
        watch.wait(lambda seen: any(t.endswith("/config") for t, _p, _r in seen), 30)

The account is a broker admin (tools.infra.broker ADMINS), made for the watch; the
tests of the AsyncAPI document and of Home Assistant discovery read the real
traffic with it.
"""

from __future__ import annotations

import secrets
import threading
import time


class Watch:
    def __init__(self, stack, *topics: str):
        import paho.mqtt.client as mqtt

        password = secrets.token_urlsafe(12)
        user = "watch-" + secrets.token_hex(4)  # its own account: another watch's does not kick this one
        stack.broker.add_user(user, password, admin=True)
        self.seen: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user)
        self.client.username_pw_set(user, password)
        if stack.tls:
            self.client.tls_set(ca_certs=str(stack.tls.ca))
        self.client.on_connect = lambda c, *a: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._keep
        self.client.connect(stack.broker.host, stack.broker.port)
        self.client.loop_start()

    def _keep(self, _client, _userdata, msg) -> None:
        with self.lock:
            self.seen.append((msg.topic, msg.payload, msg.retain))

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.seen)

    def wait(self, pred, timeout_s: float):
        """pred(messages) once it is true, else its last value after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = pred(self.messages())
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def publish(self, topic: str, payload: str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

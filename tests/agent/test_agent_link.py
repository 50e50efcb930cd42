"""A dead broker can't hang the device: socket timeouts, then capped backoff with jitter."""

from __future__ import annotations

import socket
import threading
import time

from agent_flows import DEV, KEY
from tools.sim.simdevice import SimDevice
from tools.infra.tls import ensure_tls


class Blackhole:
    """Accepts TCP connections and never answers (a broker that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self.conns = []
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(time.monotonic())
            self.conns.append(c)

    def close(self):
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


def test_dead_broker_times_out_and_retries_with_capped_backoff(tmp_path):
    # TLS, the default: the timeout holds in the handshake too
    hole = Blackhole()
    dev = SimDevice(tmp_path, DEV, KEY, "127.0.0.1", hole.port, "pw", mqtt_ca=ensure_tls(tmp_path / "tls").ca_pem(),
                    settings={"socket_timeout_s": 0.5, "backoff_min_ms": 100, "backoff_max_ms": 400})
    try:
        dev.start()
        deadline = time.monotonic() + 15
        while len(hole.accepted) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dev.running, dev.log()
        # It gave up on each silent broker after the 0.5 s timeout and came back.
        assert len(hole.accepted) >= 5, f"only {len(hole.accepted)} connects; log:\n{dev.log()}"
        gaps = [b - a for a, b in zip(hole.accepted, hole.accepted[1:])]
        # each gap = 0.5 s timeout + backoff (capped at 400 ms + 25 % jitter)
        assert all(0.45 < g < 0.5 + 0.5 + 0.4 for g in gaps), gaps
    finally:
        dev.kill()
        hole.close()


class FreezingProxy:
    """TCP proxy to the broker; freeze() stops forwarding on open connections without closing them."""

    def __init__(self, port: int):
        self.target = port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.frozen: set[int] = set()
        self._socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            n = self.connections
            u = socket.create_connection(("127.0.0.1", self.target))
            self._socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b, n), daemon=True).start()

    def _pipe(self, a, b, n):
        while True:
            try:
                data = a.recv(4096)
            except OSError:
                return
            if not data:
                return
            if n in self.frozen:
                continue  # swallowed: the link is half-open
            try:
                b.sendall(data)
            except OSError:
                return

    def freeze_current(self):
        self.frozen.add(self.connections)

    def close(self):
        self.sock.close()
        for s in self._socks:
            s.close()


def test_half_open_link_is_noticed_by_keepalive(tmp_path):
    from mqtt_cloud import Cloud
    from tools.infra.broker import start_broker

    with start_broker(tmp_path / "b", users={"cloud": "cloudpw", DEV: "devpw"}) as broker:
        proxy = FreezingProxy(broker.port)
        cloud = Cloud(broker)
        dev = SimDevice(tmp_path / "d", DEV, KEY, "127.0.0.1", proxy.port, "devpw", mqtt_ca=broker.ca_pem(),
                        settings={"keepalive_s": 2, "socket_timeout_s": 1, "backoff_min_ms": 100,
                                  "backoff_max_ms": 400})
        try:
            dev.start()
            cloud.wait_json(f"ff/{DEV}/status", lambda s: s.get("state") == "online")
            assert proxy.connections == 1
            n = len(cloud.json_on(f"ff/{DEV}/status"))
            proxy.freeze_current()
            t0 = time.monotonic()
            while proxy.connections < 2 and time.monotonic() - t0 < 10:
                time.sleep(0.1)
            # noticed within 1.5 keepalives (+ a ping period), then reconnected
            assert proxy.connections >= 2, dev.log()
            assert time.monotonic() - t0 < 6
            deadline = time.monotonic() + 10
            while not any(s.get("state") == "online" for s in cloud.json_on(f"ff/{DEV}/status")[n:]):
                assert time.monotonic() < deadline, dev.log()
                time.sleep(0.1)
        finally:
            dev.kill()
            cloud.close()
            proxy.close()


def test_a_message_too_big_is_read_off_in_pieces_acked_and_handed_on_as_a_reason():
    # issue 10 item 3, below the broker: umqtt.simple's unchanged wait_msg
    # over fleetflow.link's socket (tests/agent/mpy/link_drop.py)
    from agent_helpers import run_mpy

    cases = {c["case"]: c for c in run_mpy("link_drop.py")}
    puback = ["40021234", "40020007"]  # PUBACK of pid 0x1234, then of the next packet's pid 7
    big = cases["over the budget"]
    head = '{"id":"big1","op":"deploy","prog":"'
    assert big["first"][0] == f"oversized: {len(head) + 13000 + 2}-byte message > 12288 bytes"
    assert big["first"][1] == head + "A" * (128 - len(head))  # the first piece: the id is in it
    assert big["second"] == '{"id":"next"}' and big["pubacks"] == puback
    short = cases["no memory for it"]
    head = '{"id":"m1","op":"exec"}'
    assert short["first"] == [f"oversized: no memory for a {len(head) + 5000}-byte message",
                              head + " " * (128 - len(head))]
    assert short["second"] == '{"id":"next"}' and short["pubacks"] == puback
    fits = cases["fits"]
    assert fits["first"] == '{"id":"ok1","op":"ping"}' and fits["pubacks"] == puback


def test_device_refuses_a_broker_its_ca_did_not_sign(tmp_path):
    """A fake broker (its certificate from another CA) knows the device's
    password; the device still never logs in: the TLS handshake fails first."""
    from mqtt_cloud import Cloud
    from tools.infra.broker import start_broker

    real_ca = ensure_tls(tmp_path / "real").ca_pem()
    with start_broker(tmp_path / "fake", users={"cloud": "cloudpw", DEV: "devpw"}) as fake:
        assert fake.ca_pem() != real_ca
        spy = Cloud(fake)
        dev = SimDevice(tmp_path / "d", DEV, KEY, fake.host, fake.port, "devpw", mqtt_ca=real_ca,
                        settings={"backoff_min_ms": 100, "backoff_max_ms": 400})
        try:
            dev.start()
            deadline = time.monotonic() + 15
            while dev.log().count("not correctly signed by the trusted CA") < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert dev.log().count("not correctly signed by the trusted CA") >= 3, dev.log()
            assert dev.running, dev.log()  # refused, retrying with backoff: not crashed
            assert spy.json_on(f"ff/{DEV}/status") == []  # never logged in, so no status
        finally:
            dev.kill()
            spy.close()

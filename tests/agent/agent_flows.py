"""Flows, envelopes and a running device+broker+cloud for the agent tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from contextlib import contextmanager

from mqtt_cloud import Cloud
from shared_schema.compiler import compile_program
from shared_schema.envelope import chunked, make_envelope, signed_command
from tools.infra.broker import AmqttBroker, mosquitto_path, start_broker
from tools.sim.simdevice import SimDevice

KEY = "5e" * 32
DEV = "dev1"
QUICK = {"runs": 2, "seconds": 1, "max_error_rate": 0.25}


def good_flow(payload: int = 1, every: str = "200ms") -> dict:
    return {"steps": [
        {"node": "inject", "params": {"payload": payload, "every": every}},
        {"node": "change", "params": {"property": "value", "action": "offset", "value": 1}},
        {"node": "mqtt_out", "params": {"topic": "tick", "qos": 0}},
    ]}


def failing_flow() -> dict:
    # Every run fails: a switch can't compare the string payload with a number.
    return {"steps": [
        {"node": "inject", "params": {"payload": "not a number", "every": "200ms"}},
        {"node": "switch", "params": {"property": "value", "op": "gt", "value": 30}},
    ]}


def compiled(body: dict, ver: int, board: str = "unix-sim", flow: str = "flow_t"):
    return compile_program(body, board, flow, ver)


def envelope(body: dict, ver: int, seq: int, **kw) -> dict:
    return make_envelope(compiled(body, ver, **kw), DEV, bytes.fromhex(KEY), seq)


def deploy_cmd(cid: str, body: dict, ver: int, seq: int, health=QUICK, op: str = "deploy") -> dict:
    return dict(envelope(body, ver, seq), id=cid, op=op, health=health)


def chunked_cmds(cid: str, body: dict, ver: int, seq: int, chunk_size: int = 96, health=QUICK):
    env, chunks = chunked(compiled(body, ver), DEV, bytes.fromhex(KEY), seq, cid, chunk_size)
    return dict(env, id=cid, op="deploy", health=health), chunks


def signed(cid: str, op: str, cseq: int, **args) -> dict:
    """A signed activate/rollback/exec/cancel, as the cloud makes them."""
    return signed_command(cid, op, args, DEV, bytes.fromhex(KEY), cseq)


def inline_exec(cid: str, body: dict, ver: int, cseq: int, exec_id: str, **args) -> dict:
    """A signed exec carrying its program inline, signed with the same cseq."""
    return dict(envelope(body, ver, seq=cseq), **signed(cid, "exec", cseq, exec=exec_id, **args))


def sign_raw(prog: bytes, flow: str, ver: int, seq: int, key_hex: str = KEY) -> dict:
    """An envelope around arbitrary bytes (for the refusal matrix)."""
    sha = hashlib.sha256(prog).hexdigest()
    msg = f"ff1|{DEV}|{seq}|{flow}|{ver}|{sha}".encode()
    sig = hmac.new(bytes.fromhex(key_hex), msg, hashlib.sha256).hexdigest()
    return {"flow": flow, "ver": ver, "seq": seq, "size": len(prog), "sha": sha, "sig": sig,
            "prog": prog.decode("latin-1")}


class Rig:
    def __init__(self, broker, cloud: Cloud, device: SimDevice):
        self.broker, self.cloud, self.device = broker, cloud, device

    def send(self, cmd: dict) -> None:
        self.cloud.send(DEV, cmd)

    def ack(self, cid: str, state: str, timeout: float = 20) -> dict:
        return self.cloud.wait_ack(DEV, cid, state, timeout)

    def acks(self, cid: str) -> list[dict]:
        return [a for a in self.cloud.json_on(f"ff/{DEV}/ack") if a.get("id") == cid]

    def status(self, pred=lambda s: True, timeout: float = 20) -> dict:
        """The latest status matching pred (waits for one)."""
        topic = f"ff/{DEV}/status"
        self.cloud.wait_json(topic, pred, timeout)
        return [s for s in self.cloud.json_on(topic) if pred(s)][-1]

    def online_since(self, n_before: int, timeout: float = 30) -> dict:
        """Wait for an online status newer than the first n_before status messages."""
        topic = f"ff/{DEV}/status"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.cloud.json_on(topic)
            for s in msgs[n_before:]:
                if s.get("state") == "online":
                    return s
            time.sleep(0.1)
        raise TimeoutError(f"device not online again; log:\n{self.device.log()[-2000:]}")

    def restart_broker(self) -> dict:
        """Restart the broker; return once the cloud client is back and the
        device said online on the new broker (not a status from before the
        restart, which the old broker may still have delivered)."""
        self.broker.stop()
        self.cloud.wait_disconnected()
        n_before = self.n_status()
        self.broker.start()
        self.cloud.wait_connected()
        return self.online_since(n_before)

    def n_status(self) -> int:
        return len(self.cloud.json_on(f"ff/{DEV}/status"))


@contextmanager
def rig(tmp_path, kind: str, settings: dict | None = None, sensors: dict | None = None):
    """kind: "mosquitto", "amqtt", or "amqtt-unlimited" (amqtt with no packet
    size limit, like a broker someone set up without one)."""
    if kind == "mosquitto" and not mosquitto_path():
        print("WARNING: mosquitto is not installed: this test runs on amqtt instead")
    users = {"cloud": "cloudpw", DEV: "devpw"}
    if kind == "amqtt-unlimited":
        broker = AmqttBroker(tmp_path / "broker", users, tls=True, max_packet_size=None)
        broker.start()
    else:
        broker = start_broker(tmp_path / "broker", users=users, prefer=kind)
    cloud = None
    device = None
    try:
        cloud = Cloud(broker)
        base = {"health_interval_s": 1, "keepalive_s": 10, "socket_timeout_s": 2,
                "backoff_min_ms": 200, "backoff_max_ms": 1000}
        base.update(settings or {})
        device = SimDevice(tmp_path / "dev", DEV, KEY, broker.host, broker.port, "devpw",
                           sensors=sensors, settings=base, mqtt_ca=broker.ca_pem())
        device.start()
        yield Rig(broker, cloud, device)
    finally:
        if device:
            device.kill()
        if cloud:
            cloud.close()
        broker.stop()


def dump(obj) -> str:
    return json.dumps(obj, indent=1)[:3000]

"""Nothing a device was told was delivered is lost (issue 10, item 6).

Four devices running the real firmware ship run reports every ~0.5 s over a
real Mosquitto (persistence on, tools/infra/broker.py) to the cloud, a
`fleetflow serve` process of its own, while a rolling deployment goes on.
The cloud is killed with SIGKILL mid-rollout and started again, then
Mosquitto is. A second subscriber (the witness: a persistent QoS 1 session
like the cloud's) hears every report the broker accepted, that is acked to
its device. At the end every report the witness heard is in the cloud's
database, no run is missing on any device beyond those the device itself
counted as dropped (its buffer overflowing while it was offline), and the
rollout completes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tools.infra.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.broker]

FLEETFLOW = str(Path(sys.executable).with_name("fleetflow"))
CLOUD_PW = "acked-runs-cloud-pw"
DEVICES = 4
EVENTS: list[tuple[str, float]] = []  # (what, time.monotonic()): told when a test fails
HEALTH = {"runs": 2, "seconds": 1, "max_error_rate": 0.25}


def level_flow(threshold: int) -> dict:
    return {"name": f"Tank level over {threshold}", "definition": {
        "nodes": [{"id": "a1", "type": "adc", "config": {"pin": 34, "every": "250ms", "scale": 0.01}},
                  {"id": "a2", "type": "switch", "config": {"op": "gt", "value": threshold}},
                  {"id": "a3", "type": "mqtt_out", "config": {"topic": "level"}}],
        "connections": [{"source": "a1", "target": "a2"}, {"source": "a2", "target": "a3"}]}}


class Witness:
    """A persistent QoS 1 subscriber to ff/+/runs: every report the broker accepted."""

    def __init__(self, broker):
        import paho.mqtt.client as mqtt

        self.seen: set[tuple] = set()
        self.when: dict[tuple, float] = {}  # record key -> time.monotonic() it was heard
        self.dropped: dict[str, int] = {}  # device -> the highest `dropped` it reported
        self.last_at = time.monotonic()
        self.fresh = threading.Event()  # set by every report heard
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="acked-runs-witness",
                                  clean_session=False)
        self.client.username_pw_set("cloud", CLOUD_PW)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: c.subscribe("ff/+/runs", qos=1)
        self.client.on_message = self._heard  # paho acks once this returns
        self.client.tls_set_context(client_context(broker.tls.ca))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _heard(self, client, userdata, message):
        dev = message.topic.split("/")[1]
        body = json.loads(message.payload)
        with self._lock:
            self.seen.update(record_key(dev, r) for r in body["runs"])
            for r in body["runs"]:
                self.when[record_key(dev, r)] = time.monotonic()
            self.dropped[dev] = max(self.dropped.get(dev, 0), body.get("dropped", 0))
            self.last_at = time.monotonic()
        self.fresh.set()

    def right_after_a_report(self):
        """Return just after the broker passed a report on: the moment a
        cloud that acks before it stores holds one in memory only."""
        self.fresh.clear()
        assert self.fresh.wait(10), "no run report for 10 s"

    def snapshot(self) -> set[tuple]:
        with self._lock:
            return set(self.seen)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def record_key(dev: str, run: dict) -> tuple:
    return dev, run.get("flow"), run["run"], run.get("t_ms")


class Cloud:
    """`fleetflow serve` as a process: what kill -9 can be done to."""

    def __init__(self, workdir: Path, broker):
        from tools.infra.broker import free_port

        self.db_path = workdir / "cloud.db"
        self.port = free_port()
        self.log_path = workdir / "serve.log"
        self.env = dict(os.environ, FLEETFLOW_SECRET="ab" * 32)
        self.argv = [FLEETFLOW, "serve", "--db", f"sqlite:///{self.db_path}", "--bind", f"127.0.0.1:{self.port}",
                     "--mqtt", f"mqtts://cloud:{CLOUD_PW}@{broker.host}:{broker.port}", "--mqtt-ca", str(broker.tls.ca),
                     "--tick", "0.2"]
        self.proc = None
        made = subprocess.run([FLEETFLOW, "keys", "create", "--role", "admin", "--json", "--db",
                               f"sqlite:///{self.db_path}"], capture_output=True, text=True, env=self.env, check=True)
        from tools.cli.client import Client

        self.api = Client(f"http://127.0.0.1:{self.port}", json.loads(made.stdout)["key"], timeout_s=10)

    def start(self):
        from tools.infra.proc import owned_popen

        with open(self.log_path, "ab") as log:
            self.proc = owned_popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    stdin=subprocess.DEVNULL)
        until("the cloud answers", lambda: self._answers(), 30)
        EVENTS.append(("cloud up", time.monotonic()))

    def _answers(self) -> bool:
        from tools.cli.client import ApiError

        assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
        try:
            self.api.get("/devices")
            return True
        except ApiError:
            return False

    def kill(self):
        EVENTS.append(("cloud kill", time.monotonic()))
        self.proc.kill()  # SIGKILL: no shutdown hook runs
        self.proc.wait(10)

    def stored(self) -> set[tuple]:
        from cloud.models import RunRecord

        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT device, flow, run, t_ms FROM {RunRecord._meta.table_name}").fetchall()
        return {tuple(r) for r in rows}

    def rows(self) -> int:
        from cloud.models import RunRecord

        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            return db.execute(f"SELECT COUNT(*) FROM {RunRecord._meta.table_name}").fetchone()[0]


def until(what: str, check, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def broker(tmp_path):
    if not shutil.which("mosquitto"):
        pytest.skip("needs Mosquitto (make system installs it)")
    from tools.infra.broker import start_broker

    b = start_broker(tmp_path / "broker", users={"cloud": CLOUD_PW})
    if b.kind != "mosquitto":
        b.stop()
        pytest.skip("needs Mosquitto")
    yield b
    b.stop()


def test_kill_9_of_the_cloud_then_of_mosquitto_mid_rollout_loses_no_acked_run(tmp_path, broker):
    from tools.sim.simdevice import SimDevice

    witness = Witness(broker)
    cloud = Cloud(tmp_path, broker)
    sims = []
    try:
        cloud.start()
        api = cloud.api
        for i in range(DEVICES):
            made = api.provision_device(f"ack_{i}", "unix-sim", tags=["tank"])
            creds = made["credentials"]
            sims.append(SimDevice(tmp_path / "sim", made["id"], creds["hmac_key"], broker.host, broker.port,
                                  creds["mqtt"]["password"], sensors={"adc": {"34": 4000}},
                                  settings={"health_interval_s": 1, "runs_batch": 2}, mqtt_ca=creds["mqtt"]["ca"]))
        for sim in sims:
            sim.start()
        until("devices online", lambda: all(d["online"] for d in api.list_devices()), 60)
        flow = api.create_flow(level_flow(50))
        api.publish_flow(flow["id"])
        dep = api.create_deployment({"flow_id": flow["id"], "strategy": "all_at_once", "target_tags": ["tank"],
                                     "config": {"health": HEALTH}})
        api.deployment_action(dep["id"], "start")
        until("v1 everywhere", lambda: api.deployment(dep["id"])["status"] == "completed", 60)
        until("runs stored", lambda: len(cloud.stored()) >= 40, 30)

        flow = api.create_flow(level_flow(60))
        api.publish_flow(flow["id"])
        dep = api.create_deployment({"flow_id": flow["id"], "strategy": "rolling", "target_tags": ["tank"],
                                     "config": {"batch_size": 1, "batch_delay": "5s", "health": HEALTH}})
        api.deployment_action(dep["id"], "start")
        until("the first batch", lambda: api.deployment(dep["id"])["completed_targets"] >= 1, 30)

        for _ in range(2):  # mid-rollout, each time with a report just handed to the cloud
            witness.right_after_a_report()
            cloud.kill()
            before = len(witness.snapshot())
            time.sleep(2.0)  # the devices carry on; the broker keeps what they send for the cloud's session
            assert len(witness.snapshot()) > before, "no report was sent while the cloud was down"
            cloud.start()
            time.sleep(1.0)

        assert api.deployment(dep["id"])["status"] == "running"  # still mid-rollout
        witness.right_after_a_report()
        EVENTS.append(("broker kill", time.monotonic()))
        broker.proc.kill()  # SIGKILL of Mosquitto: it restarts from its persistence file
        broker.proc.wait(10)
        broker.proc = None
        time.sleep(1.0)
        broker.start()  # same port, same accounts
        restarted = time.monotonic()
        done = until("the rollout to end", lambda: (d := api.deployment(dep["id"]))["status"] in (
            "completed", "failed", "rolled_back", "cancelled") and d, 60)
        took = time.monotonic() - restarted
        print(f"rollout ended {took:.1f} s after Mosquitto came back")
        assert done["status"] == "completed" and done["completed_targets"] == DEVICES, done
        # (test_bridge_reconnect.py proves that a command the broker lost is
        # sent again as soon as its device is back, not after the 30 s resend)

        for sim in sims:
            sim.stop()
        until("the witness to fall quiet", lambda: time.monotonic() - witness.last_at > 1.5, 30)
        heard = witness.snapshot()
        deadline = time.monotonic() + 20
        while not heard <= cloud.stored() and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = cloud.stored()
        rows = cloud.rows()
        print(f"witness heard {len(heard)} run records; the cloud stored {len(stored)} ({rows - len(stored)} twice)")
        lost = sorted(heard - stored)
        assert not lost, ([(k, witness.when[k]) for k in lost], "events", EVENTS, cloud.log_path.read_text()[-3000:])
        # Device side: runs are numbered 1, 2, ... per program (one version of
        # each flow here); a number missing inside a device's range must have
        # been dropped by the device itself (its buffer full while offline).
        for dev in {k[0] for k in stored}:
            for flow_id in {k[1] for k in stored if k[0] == dev}:
                runs = {k[2] for k in stored if k[:2] == (dev, flow_id)}
                gaps = set(range(min(runs), max(runs) + 1)) - runs
                assert len(gaps) <= witness.dropped.get(dev, 0), (dev, flow_id, sorted(gaps), witness.dropped)
    finally:
        for sim in sims:
            sim.kill()
        if cloud.proc is not None and cloud.proc.poll() is None:
            cloud.kill()
        witness.close()

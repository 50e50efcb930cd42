"""Two cloud replicas act as one (issue 11, item 2; docs/decisions.md,
"Replicas"): two `fleetflow serve --replica` processes on one real
PostgreSQL and one real Mosquitto, four devices running the real firmware.
A rolling deployment is started on replica `a`, which drives it; `a` is
killed with SIGKILL in the middle of its first batch; replica `b` takes the
lease over once it expires and finishes the rollout; a client watching the
deployment's event stream on `b` from the start sees every step and
`complete`; no device applies the deploy twice (a witness on the broker
hears every ack; a repeat is acked with `repeat`, never applied); and the
devices' run reports, heard by one replica or the other, are stored once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.infra.tls import client_context

pytestmark = [pytest.mark.slow, pytest.mark.broker]

FLEETFLOW = str(Path(sys.executable).with_name("fleetflow"))
CLOUD_PW = "replicas-cloud-pw"
DEVICES = 4
HEALTH = {"runs": 2, "seconds": 1, "max_error_rate": 0.25}
LEASE_TTL_S = 1.5
LEVEL_FLOW = {"name": "Tank level", "definition": {
    "nodes": [{"id": "a1", "type": "adc", "config": {"pin": 34, "every": "250ms", "scale": 0.01}},
              {"id": "a2", "type": "switch", "config": {"op": "gt", "value": 50}},
              {"id": "a3", "type": "mqtt_out", "config": {"topic": "level"}}],
    "connections": [{"source": "a1", "target": "a2"}, {"source": "a2", "target": "a3"}]}}


def until(what: str, check, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Replica:
    """`fleetflow serve --replica NAME` as a process: what kill -9 can be done to."""

    def __init__(self, name: str, workdir: Path, db_url: str, broker, key: str | None):
        from tools.infra.broker import free_port
        from tools.cli.client import Client

        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"serve-{name}.log"
        self.env = dict(os.environ, FLEETFLOW_SECRET="cd" * 32)
        self.argv = [FLEETFLOW, "serve", "--db", db_url, "--bind", f"127.0.0.1:{self.port}",
                     "--mqtt", f"mqtts://cloud:{CLOUD_PW}@{broker.host}:{broker.port}",
                     "--mqtt-ca", str(broker.tls.ca), "--tick", "0.2", "--replica", name,
                     "--lease-ttl", str(LEASE_TTL_S)]
        self.api = Client(f"http://127.0.0.1:{self.port}", key, timeout_s=10)
        self.proc = None

    def start(self):
        from tools.infra.proc import owned_popen

        with open(self.log_path, "ab") as log:
            self.proc = owned_popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    stdin=subprocess.DEVNULL)

    def answers(self) -> bool:
        from tools.cli.client import ApiError

        assert self.proc.poll() is None, self.log()
        try:
            self.api.get("/devices")
            return True
        except ApiError as exc:
            return exc.status == 401  # up, and no key made yet

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self):
        self.proc.kill()  # SIGKILL: no shutdown hook runs, its leases are not released
        self.proc.wait(10)


class AckWitness:
    """A plain (not shared) subscriber to every device's acks."""

    def __init__(self, broker):
        import paho.mqtt.client as mqtt

        self.acks: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replicas-witness")
        self.client.username_pw_set("cloud", CLOUD_PW)
        self.client.on_connect = lambda c, *_: c.subscribe("ff/+/ack", qos=1)
        self.client.on_message = self._heard
        self.client.tls_set_context(client_context(broker.tls.ca))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _heard(self, client, userdata, message):
        with self._lock:
            self.acks.append((message.topic.split("/")[1], json.loads(message.payload)))

    def of(self, prefix: str) -> list[tuple[str, dict]]:
        with self._lock:
            return [(d, a) for d, a in self.acks if str(a.get("id", "")).startswith(prefix)]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def run_records(db_url: str) -> tuple[int, list]:
    """How many run records are stored, and the (device, flow, run) stored more than once."""
    import psycopg2

    from cloud.models import RunRecord

    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        table = RunRecord._meta.table_name
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        count = cur.fetchone()[0]
        cur.execute(f"SELECT device, flow, run FROM {table} GROUP BY device, flow, run HAVING COUNT(*) > 1")
        return count, cur.fetchall()


@pytest.fixture
def broker(tmp_path):
    if not shutil.which("mosquitto"):
        pytest.skip("needs Mosquitto (make system installs it): amqtt has no shared subscriptions")
    from tools.infra.broker import start_broker

    b = start_broker(tmp_path / "broker", users={"cloud": CLOUD_PW})
    yield b
    b.stop()


@pytest.fixture
def pg_url(postgres, empty_postgres):  # postgres: the session's cluster (conftest.py)
    return empty_postgres(postgres)


def test_kill_9_of_the_replica_driving_a_rollout_mid_batch_the_other_finishes_it(tmp_path, pg_url, broker):
    from tools.sim.simdevice import SimDevice

    a = Replica("a", tmp_path, pg_url, broker, None)
    a.start()  # first alone: it makes the schema
    until("replica a answers", a.answers, 30)
    made = subprocess.run([FLEETFLOW, "keys", "create", "--role", "admin", "--json", "--db", pg_url],
                          capture_output=True, text=True, env=a.env, check=True)
    key = json.loads(made.stdout)["key"]
    a.api.api_key = key
    b = Replica("b", tmp_path, pg_url, broker, key)
    b.start()
    until("replica b answers", b.answers, 30)
    witness = AckWitness(broker)
    sims, events = [], []
    try:
        for i in range(DEVICES):
            made = (a if i % 2 else b).api.provision_device(f"rep_{i}", "unix-sim", tags=["tank"])
            creds = made["credentials"]
            sims.append(SimDevice(tmp_path / "sim", made["id"], creds["hmac_key"], broker.host, broker.port,
                                  creds["mqtt"]["password"], sensors={"adc": {"34": 4000}},
                                  settings={"health_interval_s": 1}, mqtt_ca=creds["mqtt"]["ca"]))
        for sim in sims:
            sim.start()
        for replica in (a, b):  # status is heard by every replica
            until(f"devices online on {replica.name}",
                  lambda r=replica: len(r.api.list_devices()) == DEVICES and all(
                      d["online"] for d in r.api.list_devices()), 60)
        flow = b.api.create_flow(LEVEL_FLOW)
        b.api.publish_flow(flow["id"])
        dep = b.api.create_deployment({"flow_id": flow["id"], "strategy": "rolling", "target_tags": ["tank"],
                                       "config": {"batch_size": 2, "batch_delay": "500ms", "health": HEALTH}})

        def watch():  # a client of replica b's event stream, from before the start to the end
            for event_id, event, data in b.api.stream(f"/deployments/{dep['id']}/stream", timeout_s=60):
                events.append((event, data))
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        until("the stream's metadata", lambda: events, 10)
        a.api.deployment_action(dep["id"], "start")  # started on a: a drives it

        def first_batch_sent():
            targets = a.api.deployment(dep["id"])["targets"]
            return all(t["status"] == "deploying" for t in targets[:2])
        until("the first batch to be sent", first_batch_sent, 20)
        assert not all(t["status"] == "success" for t in b.api.deployment(dep["id"])["targets"][:2])
        a.kill()  # mid-batch: its deploys are out, their acks not all heard
        killed = time.monotonic()

        done = until("the rollout to end on b", lambda: (d := b.api.deployment(dep["id"]))["status"] in (
            "completed", "failed", "rolled_back", "cancelled") and d, 60)
        print(f"the rollout ended {time.monotonic() - killed:.1f} s after replica a was killed")
        assert done["status"] == "completed" and done["completed_targets"] == DEVICES, (done, b.log())
        assert f"b now drives deployment:{dep['id']}" in b.log_path.read_text()

        watcher.join(10)
        assert not watcher.is_alive(), "the stream on b did not end"
        assert events[0][0] == "metadata" and events[-1] == ("complete", {"id": dep["id"], "status": "completed"})
        statuses = [d["deployment"].get("status") for e, d in events if e == "update"]
        assert "running" in statuses  # decided by a, heard on b (LISTEN/NOTIFY)
        succeeded = {t["device_id"] for e, d in events if e == "update" for t in d["targets"]
                     if t.get("status") == "success"}
        assert succeeded == {f"rep_{i}" for i in range(DEVICES)}

        # no device applied the deploy twice: one first `applied` per device,
        # anything after it a repeat (the re-send b made when it took over)
        acks = witness.of(dep["id"] + ".")
        for i in range(DEVICES):
            applied = [a_ for d, a_ in acks if d == f"rep_{i}" and a_["state"] == "applied" and not a_.get("repeat")]
            assert len(applied) == 1, (f"rep_{i}", [a_ for d, a_ in acks if d == f"rep_{i}"])
        devices = b.api.list_devices()
        seqs = {t["device_id"]: t["seq"] for t in done["targets"]}
        assert all(d["flow"] == flow["id"] and d["seq"] == seqs[d["id"]] for d in devices), devices

        # a comes back (same name) and shares the device messages with b again
        # (shared subscriptions): every run report is stored once, not once by each
        a.start()
        until("replica a answers again", a.answers, 30)
        before, _ = run_records(pg_url)
        until("more run reports", lambda: run_records(pg_url)[0] >= before + 4 * DEVICES, 20)
        stored, twice = run_records(pg_url)
        assert twice == [], twice
    finally:
        for sim in sims:
            sim.kill()
        witness.close()
        for replica in (a, b):
            if replica.proc is not None and replica.proc.poll() is None:
                replica.kill()
        for replica in (a, b):
            print(f"--- replica {replica.name}\n{replica.log()}")

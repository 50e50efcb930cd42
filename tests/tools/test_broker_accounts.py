"""Broker accounts (issue 10, items 1, 2, 4, 7, 8), on Mosquitto with its
Dynamic Security plugin and on amqtt with our plugins: a whole stack (the
broker, the cloud provisioning over the API) and real MQTT clients."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as mqtt
import pytest

from tools.infra.broker import mosquitto_path
from tools.cli.client import ApiError
from tools.infra.stack import Stack
from tools.infra.tls import client_context

KINDS = [pytest.param("mosquitto", marks=pytest.mark.skipif(not mosquitto_path(), reason="mosquitto not installed")),
         "amqtt"]
pytestmark = pytest.mark.broker


@pytest.fixture(scope="module", params=KINDS)
def stack(request, tmp_path_factory):
    with Stack(tmp_path_factory.mktemp(request.param), prefer_broker=request.param, log=lambda *a: None) as s:
        assert s.broker.kind == request.param
        deadline = time.monotonic() + 10
        while cloud_connections(s) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield s


class Session:
    """One MQTT connection: its CONNACK code (-1: none) and the disconnects it saw."""

    def __init__(self, broker, user: str, password: str, client_id: str, clean: bool = False):
        self.rc = -1
        self.drops = 0
        self._answered = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(60, 60)  # one connection: no quiet reconnect behind the test's back
        if getattr(broker, "tls", None):  # MQTT over TLS, the default
            self.client.tls_set_context(client_context(broker.tls.ca))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        self._answered.wait(5)

    def _on_connect(self, c, userdata, flags, reason, props=None):
        self.rc = reason.value
        self._answered.set()

    def _on_disconnect(self, c, userdata, flags, reason, props=None):
        if self.rc == 0:
            self.drops += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_rc(broker, user, password, client_id, clean: bool = False) -> int:
    s = Session(broker, user, password, client_id, clean)
    s.close()
    return s.rc


def cloud_connections(stack) -> int:
    """How often the cloud's bridge has connected to the broker (its log says each time)."""
    return stack.cloud_log.read_text().count("connected to mqtts://")


def provision(stack, device_id):
    return stack.provision(device_id)["mqtt_password"]


@pytest.mark.parametrize("device_id", ["cloud", "admin", "Cloud", "fleetflow-cloud", "fleetflow-admin"])
def test_reserved_ids_are_refused_and_the_cloud_keeps_its_link(stack, device_id):
    before = cloud_connections(stack)
    with pytest.raises(ApiError) as info:
        provision(stack, device_id)
    assert info.value.status == 422
    assert info.value.body["errors"][0]["pointer"] == "/id"
    assert "reserved" in info.value.body["errors"][0]["message"]
    time.sleep(0.3)
    assert cloud_connections(stack) == before == 1
    assert device_id not in {d["id"] for d in stack.api.list_devices()}


def test_a_device_cannot_log_in_under_another_client_id(stack):
    pw_a, pw_b = provision(stack, "imp-a"), provision(stack, "imp-b")
    victim = Session(stack.broker, "imp-b", pw_b, "imp-b")
    before = cloud_connections(stack)
    try:
        assert victim.rc == 0
        for other in ("fleetflow-cloud", "imp-b", "imp-a-2"):
            for clean in (False, True):  # amqtt would delete (clean) or take over the session it names
                assert connect_rc(stack.broker, "imp-a", pw_a, other, clean) not in (0, -1), (other, clean)
        time.sleep(0.5)
        assert victim.drops == 0 and victim.client.is_connected()
        assert cloud_connections(stack) == before
        assert connect_rc(stack.broker, "imp-a", pw_a, "imp-a") == 0
    finally:
        victim.close()


def test_32_concurrent_provisionings_all_get_accounts_that_connect(stack):
    ids = [f"burst-{i:02d}" for i in range(32)]
    messages = _control_messages(stack)
    with ThreadPoolExecutor(32) as pool:
        passwords = list(pool.map(lambda d: provision(stack, d), ids))
        codes = list(pool.map(lambda dp: connect_rc(stack.broker, dp[0], dp[1], dp[0]), zip(ids, passwords)))
    assert codes == [0] * 32
    if stack.broker.kind == "mosquitto":
        # Mosquitto rewrites its whole account file once per $CONTROL message:
        # the changes asked for while one is out share the next (cloud/dynsec.py)
        assert _control_messages(stack) - messages < 16


def _control_messages(stack) -> int:
    """$CONTROL messages the cloud has sent Mosquitto (one connection each, logged by the broker)."""
    if stack.broker.kind != "mosquitto":
        return 0
    return stack.broker.log_path.read_text().count(" as fleetflow-accounts-")


def test_a_deleted_device_is_kicked_and_cannot_reconnect(stack):
    pw = provision(stack, "gone-1")
    live = Session(stack.broker, "gone-1", pw, "gone-1")
    try:
        assert live.rc == 0
        stack.api.request("DELETE", "/devices/gone-1")
        deadline = time.monotonic() + 5
        while live.drops == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.drops == 1
    finally:
        live.close()
    assert connect_rc(stack.broker, "gone-1", pw, "gone-1") not in (0, -1)
    with pytest.raises(ApiError) as info:
        stack.api.get_device("gone-1")
    assert info.value.status == 404


def test_provisioning_keeps_working_across_a_broker_restart(stack):
    """No PID to go stale (item 8): accounts go over MQTT to whatever broker runs now."""
    pw_old = provision(stack, "before-restart")
    stack.broker.restart()
    pw_new = provision(stack, "after-restart")
    assert connect_rc(stack.broker, "after-restart", pw_new, "after-restart") == 0
    assert connect_rc(stack.broker, "before-restart", pw_old, "before-restart") == 0


def test_readme_shows_the_mosquitto_config_the_tests_run():
    import textwrap
    from pathlib import Path

    from tools.infra.broker import mosquitto_config

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    block = readme.split("sudo tee /etc/mosquitto/mosquitto.conf <<'EOF'\n", 1)[1].split("       EOF\n", 1)[0]
    assert textwrap.dedent(block) == mosquitto_config()


@pytest.mark.parametrize("kind", KINDS)
def test_the_broker_refuses_an_oversized_packet_and_keeps_its_account_files_private(tmp_path, kind):
    """The 200 KB command that wedged a device never gets past the broker
    (amqtt, the embedded one, too: tools/infra/broker.py SizedReader); a message of
    the largest legitimate size does."""
    from shared_schema.envelope import MAX_PACKET_BYTES
    from tools.infra.broker import start_broker

    with start_broker(tmp_path / "m", users={"cloud": "cloudpw", "dev1": "pw1"}, prefer=kind) as broker:
        assert broker.kind == kind
        got = []
        dev = Session(broker, "dev1", "pw1", "dev1")
        dev.client.on_message = lambda c, u, m: got.append(len(m.payload))
        dev.client.subscribe("ff/dev1/cmd", qos=1)
        cloud = Session(broker, "cloud", "cloudpw", "cloud-t")
        try:
            assert dev.rc == 0 and cloud.rc == 0
            cloud.client.publish("ff/dev1/cmd", b"x" * 200_000, qos=1)
            time.sleep(0.5)
            assert cloud.drops == 1  # the broker cut the sender off
            cloud2 = Session(broker, "cloud", "cloudpw", "cloud-t2")
            cloud2.client.publish("ff/dev1/cmd", b"y" * (MAX_PACKET_BYTES - 100), qos=1).wait_for_publish(5)
            time.sleep(0.3)
            cloud2.close()
            assert got == [MAX_PACKET_BYTES - 100] and dev.drops == 0
        finally:
            dev.close()
            cloud.close()
        if kind == "amqtt":
            return  # accounts in memory: no files
        assert {p.name: p.stat().st_mode & 0o777 for p in broker.workdir.glob("dynsec*")} == {
            "dynsec-admin.json": 0o600}
        assert (broker.workdir / "dynamic-security.json").stat().st_mode & 0o777 == 0o600


def test_every_board_reads_the_largest_packet_the_broker_lets_through():
    from shared_schema.boards import board_names, load_board
    from shared_schema.envelope import MAX_PACKET_BYTES

    assert {b: load_board(b).msg_max_bytes >= MAX_PACKET_BYTES for b in board_names()} == {
        b: True for b in board_names()}


@pytest.mark.skipif(not mosquitto_path(), reason="mosquitto not installed")
async def test_the_readme_set_up_gives_a_broker_serve_provisions_on(tmp_path, capsys, monkeypatch):
    """README step 1 and 2 in small: `broker init` and `broker config`, then
    `serve`'s hooks make an account a device can use, and delete it."""
    import argparse
    import asyncio
    import os
    import subprocess

    from tools.infra.broker import _wait_port, dynsec_plugin_path, free_port, mosquitto_config
    from tools.cli import main
    from tools.cli.cmd_serve import build_config
    from tools.infra.proc import owned_popen
    from tools.infra.tls import tls_files

    port = free_port()
    tls_dir = tmp_path / "certs"
    assert main(["broker", "init", "--dir", str(tmp_path), "--port", str(port), "--tls-dir", str(tls_dir)]) == 0
    env_line, ca_line = capsys.readouterr().out.strip().splitlines()
    assert env_line.startswith("FLEETFLOW_MQTT_URL=mqtts://cloud:") and env_line.endswith(f"@127.0.0.1:{port}")
    assert ca_line == f"FLEETFLOW_MQTT_CA={tls_dir / 'ca.pem'}" and (tls_dir / "broker.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "dynamic-security.json").stat().st_mode & 0o777 == 0o600
    assert main(["broker", "init", "--dir", str(tmp_path)]) == 1  # never over the broker's accounts
    assert main(["broker", "config", "--dir", "/var/lib/mosquitto"]) == 0
    assert capsys.readouterr().out == mosquitto_config()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(mosquitto_config(port=port, host="127.0.0.1", data_dir=str(tmp_path), plugin=dynsec_plugin_path(),
                                     log_file=str(tmp_path / "m.log"), run_as_root=os.geteuid() == 0,
                                     tls_dir=str(tls_dir)))
    proc = owned_popen([mosquitto_path(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       umask=0o077)
    try:
        _wait_port("127.0.0.1", port, 10, alive=lambda: proc.poll() is None)
        monkeypatch.setenv("FLEETFLOW_SECRET_FILE", str(tmp_path / "secret"))
        config = build_config(argparse.Namespace(db=f"sqlite:///{tmp_path / 'c.db'}", mqtt=env_line.split("=", 1)[1],
                                                 prefix="ff", tick=1.0, broker_accounts="dynsec",
                                                 mqtt_ca=ca_line.split("=", 1)[1]))
        broker = argparse.Namespace(host="127.0.0.1", port=port, tls=tls_files(tls_dir))
        await config.on_provision("kitchen-1", "pw-1")
        assert await asyncio.to_thread(connect_rc, broker, "kitchen-1", "pw-1", "kitchen-1") == 0
        await config.on_delete("kitchen-1")
        assert await asyncio.to_thread(connect_rc, broker, "kitchen-1", "pw-1", "kitchen-1") not in (0, -1)
        assert (tmp_path / "dynamic-security.json").stat().st_mode & 0o777 == 0o600  # re-saved by Mosquitto
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.slow
@pytest.mark.skipif(not mosquitto_path(), reason="mosquitto not installed")
def test_accounts_bench_reports_the_broker_cost_per_provisioning():
    import argparse

    from tools.bench import accounts

    rows = accounts.run(argparse.Namespace(accounts="10,200", probe=2))["per_provisioning"]
    assert [r["accounts"] for r in rows] == [10, 200]
    assert rows[1]["json_kb"] > rows[0]["json_kb"] > 0 and all(r["broker_cpu_ms"] >= 0 for r in rows)

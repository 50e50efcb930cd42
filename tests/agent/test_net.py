"""Wi-Fi and time on the device (fleetflow/net.py), under the real MicroPython.

The simulated board's Wi-Fi interface loses its access point while a file
exists (firmware/fleetflow/hal/sim.py SimWLAN), and the relay it reaches
the broker through (tools/sim/netfault.FlakyLink) cuts every connection at the
same moment: a Wi-Fi drop seen from both ends. Its NTP can be made to fail
(sim config "clock").
"""

from __future__ import annotations

import time

import pytest

from agent_flows import DEV, KEY, deploy_cmd, good_flow
from mqtt_cloud import Cloud
from tools.infra.broker import start_broker
from tools.sim.netfault import FlakyLink
from tools.sim.simdevice import SimDevice

FAST = {"health_interval_s": 1, "keepalive_s": 10, "socket_timeout_s": 2,
        "backoff_min_ms": 200, "backoff_max_ms": 1000}


def _wait(pred, timeout: float, what: str, dev: SimDevice):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"{what}; log:\n{dev.log()[-3000:]}"
        time.sleep(0.1)


@pytest.mark.broker
def test_wifi_that_drops_comes_back_by_itself_and_ships_the_runs_it_kept(tmp_path):
    down = tmp_path / "wifi_down"
    with start_broker(tmp_path / "b", users={"cloud": "cloudpw", DEV: "devpw"}) as broker:
        cloud = Cloud(broker)
        ap = FlakyLink(broker.host, broker.port, up_s=3600, down_s=0, down_file=down).start()
        dev = SimDevice(tmp_path / "d", DEV, KEY, ap.host, ap.port, "devpw", mqtt_ca=broker.ca_pem(),
                        sensors={"wifi": {"down_file": str(down), "rssi": -67}},
                        settings=dict(FAST, runs_buffer=64, runs_buffer_rows=256))  # ~12 s offline kept
        try:
            dev.start()
            cloud.wait_json(f"ff/{DEV}/status", lambda s: s.get("state") == "online")
            cloud.send(DEV, deploy_cmd("d1", good_flow(1, every="200ms"), ver=1, seq=1))
            cloud.wait_ack(DEV, "d1", "healthy")
            h0 = h = cloud.wait_json(f"ff/{DEV}/health", lambda h: h.get("runs", 0) >= 3)
            assert h["rssi"] == -67 and h["wifi_reconnects"] == 0 and h["synced"] is True

            ap.drop()   # the access point is gone, and the TCP path with it
            _wait(lambda: "net: wifi down" in dev.log(), 5, "the device did not notice", dev)
            n_status = len(cloud.json_on(f"ff/{DEV}/status"))
            time.sleep(2.0)  # ~10 runs at 5 Hz, kept for later
            ap.restore()
            _wait(lambda: any(s.get("state") == "online" for s in cloud.json_on(f"ff/{DEV}/status")[n_status:]),
                  20, "not back online by itself", dev)
            h = cloud.wait_json(f"ff/{DEV}/health", lambda h: h.get("wifi_reconnects") == 1, timeout=10)
            assert h["rssi"] == -67
            # the runs made offline arrive: run numbers with no gap, none dropped
            _wait(lambda: len(_runs(cloud)) > max(_runs(cloud)) - min(_runs(cloud)) - 1 and
                  max(_runs(cloud)) >= h["runs"], 20, f"runs missing: {sorted(_runs(cloud))}", dev)
            runs = _runs(cloud)
            assert sorted(runs) == list(range(min(runs), max(runs) + 1)), sorted(runs)
            batches = cloud.json_on(f"ff/{DEV}/runs")
            assert all(b["dropped"] == 0 and b["synced"] is True for b in batches)
            # the flow ran on while offline: 2 s or more at 5 Hz (a fixed
            # total, 20, failed about half the time at 19: when h0 came)
            assert h["runs"] >= h0["runs"] + 8, (h0["runs"], h["runs"])
        finally:
            dev.kill()
            ap.stop()
            cloud.close()


def _runs(cloud) -> list[int]:
    return [r["run"] for b in cloud.json_on(f"ff/{DEV}/runs") for r in b["runs"] if r.get("ver") == 1]


@pytest.mark.broker
def test_tls_waits_for_ntp_and_a_device_without_time_says_so(tmp_path):
    # NTP answers nothing for the first 3 s: over TLS the device tries no
    # broker before its clock is set, and says why in its log
    with start_broker(tmp_path / "b", users={"cloud": "cloudpw", DEV: "devpw"}) as broker:
        cloud = Cloud(broker)
        dev = SimDevice(tmp_path / "d", DEV, KEY, broker.host, broker.port, "devpw", mqtt_ca=broker.ca_pem(),
                        sensors={"clock": {"ntp_fail_s": 3}}, settings=FAST)
        try:
            t0 = time.monotonic()
            dev.start()
            st = cloud.wait_json(f"ff/{DEV}/status", lambda s: s.get("state") == "online", timeout=20)
            assert time.monotonic() - t0 > 3
            assert st["synced"] is True and abs(st["time"] - time.time()) < 5
            assert dev.log().count("net: ntp: [Errno 110] ETIMEDOUT (TLS waits)") >= 2, dev.log()
        finally:
            dev.kill()
            cloud.close()
    # plain MQTT and an NTP that never answers: the device comes online and
    # says its clock is not synced, in its status, health and runs
    with start_broker(tmp_path / "p", users={"cloud": "cloudpw", DEV: "devpw"}, tls=False) as broker:
        cloud = Cloud(broker)
        dev = SimDevice(tmp_path / "d2", DEV, KEY, broker.host, broker.port, "devpw",
                        sensors={"clock": {"ntp_fail_s": -1}}, settings=FAST)
        try:
            dev.start()
            st = cloud.wait_json(f"ff/{DEV}/status", lambda s: s.get("state") == "online")
            assert st["synced"] is False and st["time"] is None
            cloud.send(DEV, deploy_cmd("d1", good_flow(1), ver=1, seq=1))
            batch = cloud.wait_json(f"ff/{DEV}/runs")
            assert batch["synced"] is False and batch["time"] is None and batch["t_ms"] >= batch["runs"][-1]["t_ms"]
            h = cloud.wait_json(f"ff/{DEV}/health")
            assert h["synced"] is False and h["time"] is None
        finally:
            dev.kill()
            cloud.close()

"""tools/sim/simdevice.py: provisioning by MicroPython, clean stop vs power cut, no orphans."""

from __future__ import annotations

import os
import time

import pytest

from agent_flows import DEV, rig


@pytest.mark.broker
def test_simdevice_lifecycle(tmp_path):
    with rig(tmp_path, "mosquitto") as r:
        dev = r.device
        online = r.status(lambda s: s.get("state") == "online")
        assert online["board"] == "unix-sim"
        # the flash image: 2 MB of LittleFS v2, formatted by MicroPython
        img = dev.image.read_bytes()
        assert len(img) == 2 * 1024 * 1024 and b"littlefs" in img[:8192]
        pid = dev.proc.pid

        # clean stop: the agent itself says offline (retained)
        n = r.n_status()
        dev.stop()
        assert not dev.running
        off = r.cloud.wait_json(f"ff/{DEV}/status", lambda s: s.get("state") == "offline")
        assert off == {"state": "offline"} and r.n_status() > n
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

        # power cut: the broker publishes the last will
        dev.start()
        r.online_since(r.n_status())
        pid = dev.proc.pid
        n = r.n_status()
        dev.kill()
        assert not dev.running
        deadline = time.monotonic() + 10
        while not any(s.get("state") == "offline" for s in r.cloud.json_on(f"ff/{DEV}/status")[n:]):
            assert time.monotonic() < deadline, "no last will after the power cut"
            time.sleep(0.05)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

        # restart boots from the same flash
        dev.restart()
        assert dev.running
        r.online_since(r.n_status())
        assert "online as dev1" in dev.log()


def test_bundle_board_carries_the_hash_the_device_would_compute():
    # The device reads nt_hash from the bundle's board.json instead of
    # computing it at boot (heap): it must be exactly what the firmware in
    # that bundle computes from its own node table.
    import json
    import subprocess

    from tools.sim import simdevice

    bundle = simdevice.sim_bundle("unix-sim")
    board = json.loads((bundle / "board.json").read_text())
    assert set(board) == {"name", "nodes", "pins", "reserved", "program_max_bytes", "msg_max_bytes", "watchdog_ms",
                          "nt_hash"}
    code = ("import json\nfrom fleetflow.nodetable import table_hash\n"
            f"print(table_hash({json.dumps(board['nodes'])}))")
    proc = subprocess.run([str(simdevice.MICROPYTHON), "-X", "heapsize=64k", "-c", code],
                          env=simdevice.mpy_env(bundle / "lib"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == board["nt_hash"]


@pytest.mark.broker
def test_a_new_broker_port_is_written_into_the_image_and_its_flow_kept(tmp_path):
    # a restarted simulator's broker listens elsewhere (issue 9: the image
    # kept the old port and the device stayed offline); here the new port is
    # a relay to the same broker
    from agent_flows import KEY, deploy_cmd, good_flow
    from tools.sim.netfault import FlakyLink
    from tools.sim.simdevice import SimDevice

    with rig(tmp_path, "mosquitto") as r:
        r.status(lambda s: s.get("state") == "online")
        r.send(deploy_cmd("d1", good_flow(1), ver=1, seq=1))
        r.ack("d1", "healthy")
        r.device.stop()
        stamp = r.device.stamp_path.read_text()
        relay = FlakyLink(r.broker.host, r.broker.port, up_s=3600, down_s=0).start()
        try:
            same = ("health_interval_s", "keepalive_s", "socket_timeout_s", "backoff_min_ms", "backoff_max_ms")
            moved = SimDevice(tmp_path / "dev", DEV, KEY, relay.host, relay.port, "devpw",
                              settings={k: r.device.config[k] for k in same}, mqtt_ca=r.broker.ca_pem())
            assert relay.port != r.broker.port
            n = r.n_status()
            moved.start()
            try:
                st = r.online_since(n)
                assert (st["ver"], st["slot"], st["trial"]) == (1, "a", False)  # its flow, from its flash
                assert moved.stamp_path.read_text() != stamp
            finally:
                moved.kill()
        finally:
            relay.stop()

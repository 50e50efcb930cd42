"""tools/simdevice.py: provisioning by MicroPython, clean stop vs power cut, no orphans."""

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

    from tools import simdevice

    bundle = simdevice.sim_bundle("unix-sim")
    board = json.loads((bundle / "board.json").read_text())
    assert set(board) == {"name", "nodes", "pins", "reserved", "program_max_bytes", "msg_max_bytes", "nt_hash"}
    code = ("import json\nfrom fleetflow.nodetable import table_hash\n"
            f"print(table_hash({json.dumps(board['nodes'])}))")
    proc = subprocess.run([str(simdevice.MICROPYTHON), "-X", "heapsize=64k", "-c", code],
                          env=simdevice.mpy_env(bundle / "lib"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == board["nt_hash"]

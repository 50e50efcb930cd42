"""The watchdog: a loop that hangs resets the device, and on trial the resets roll it back.

The simulated HAL's watchdog (firmware/fleetflow/hal/sim_wdt.py) ends the
MicroPython process when the agent's loop stops feeding it, and the
simulator (tools/sim/simdevice.py) powers it up again as a board's watchdog
would, with reset cause `watchdog`.
"""

from __future__ import annotations

import pytest

from agent_flows import DEV, deploy_cmd, good_flow, rig
from tools.sim.simdevice import WDT_RETURNCODE

# a DHT whose driver never comes back (a read that blocks for 10 minutes),
# and a 3 s watchdog instead of the board file's 8 s, to keep the test short
HUNG_SENSOR = {"dht": {"4": {"read_ms": 600_000}}, "wdt_ms": 3000}


def hanging_flow() -> dict:
    return {"steps": [
        {"node": "dht", "params": {"pin": 4, "every": "2s"}},
        {"node": "mqtt_out", "params": {"topic": "climate", "qos": 0}},
    ]}


@pytest.mark.broker
def test_a_node_that_hangs_on_trial_resets_the_device_until_it_rolls_back(tmp_path):
    with rig(tmp_path, "mosquitto", sensors=HUNG_SENSOR) as r:
        first = r.status(lambda s: s.get("state") == "online")
        assert first["reset"] == "power"
        r.send(deploy_cmd("d1", good_flow(1), ver=1, seq=1))
        r.ack("d1", "healthy")

        r.send(deploy_cmd("d2", hanging_flow(), ver=2, seq=2))
        assert r.ack("d2", "applied")["slot"] == "b"
        # three watchdog resets on trial: the boot counter rolls it back
        rb = r.ack("d2", "rolled_back", timeout=60)
        assert rb["reason"] == "boot_loop: watchdog reset" and rb["slot"] == "a"
        st = r.status(lambda s: s.get("state") == "online" and s.get("ver") == 1 and not s["trial"])
        assert st["reset"] == "watchdog" and st["failed"] == {"slot": "b", "reason": "boot_loop: watchdog reset"}
        assert r.device.watchdog_resets == 3
        assert r.device.log().count("wdt: not fed for") == 3
        # v1 runs again, and its loop keeps the watchdog fed
        n = len(r.cloud.json_on(f"ff/{DEV}/out/tick"))
        r.cloud.wait_json(f"ff/{DEV}/out/tick", lambda m: len(r.cloud.json_on(f"ff/{DEV}/out/tick")) > n + 15,
                          timeout=20)
        assert r.device.running and r.device.watchdog_resets == 3


def test_the_simulated_watchdog_ends_a_stalled_process_with_its_own_code(tmp_path):
    # under the real MicroPython: fed for a while, then a stall; the
    # process ends by the watchdog's signal, nothing else
    import subprocess

    from agent_helpers import MICROPYTHON, mpy_env

    code = ("import time\nfrom fleetflow.hal import get_hal\n"
            "hal = get_hal('unix-sim', {})\nw = hal.watchdog(500)\n"
            "for _ in range(10):\n    time.sleep_ms(100)\n    w.feed()\n"
            "print('fed', hal.reset_cause())\ntime.sleep_ms(5000)\nprint('not reset')\n")
    env = dict(mpy_env(), FF_RESET="watchdog")
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=64k", "-c", code], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == WDT_RETURNCODE, proc
    assert proc.stdout.splitlines()[0] == "fed watchdog"
    assert "wdt: not fed for" in proc.stdout and "not reset" not in proc.stdout

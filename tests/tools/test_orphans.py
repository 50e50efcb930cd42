"""A SIGKILLed simulator leaves nothing behind: its devices and its Mosquitto
run in sessions of their own, and get SIGTERM from the kernel when it dies
(tools/infra/proc.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.infra import proc
from tools.infra.broker import mosquitto_path

FLEETFLOW = str(Path(sys.executable).with_name("fleetflow"))


def _wait(pred, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while not (value := pred()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.mark.skipif(not proc.supported(), reason="parent-death signal is Linux only")
@pytest.mark.skipif(not mosquitto_path(), reason="needs mosquitto (amqtt runs inside the simulator)")
def test_a_sigkilled_simulator_leaves_no_device_or_broker_running(tmp_path, procs_mentioning):
    workdir = tmp_path / "sim"
    # device 2 boot-loops: the simulator restarts it from its boot-loop thread
    sim = subprocess.Popen([FLEETFLOW, "sim", "--devices", "2", "--fault", "2=boot_loop", "--workdir", str(workdir),
                            "--duration", "600", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(sim.stdout.readline())
        assert info["devices"] == ["sim-001", "sim-002"]
        running = _wait(lambda: [p for p in procs_mentioning(str(workdir)) if "sim-002.img" in p], 10)
        first = running[0].split(":")[0]
        # the boot-looped device is power-cycled, then started again by the boot-loop thread
        assert _wait(lambda: [p for p in procs_mentioning(str(workdir))
                              if "sim-002.img" in p and not p.startswith(first + ":")], 10)
        time.sleep(0.3)
        before = procs_mentioning(str(workdir))
        assert any("mosquitto" in p for p in before) and any("sim-001.img" in p for p in before), before
        sim.send_signal(signal.SIGKILL)
        sim.wait(5)
        left = _wait(lambda: not procs_mentioning(str(workdir)), 5)
        assert left, f"still running after the simulator was SIGKILLed: {procs_mentioning(str(workdir))}"
    finally:
        if sim.poll() is None:
            sim.kill()
        for line in procs_mentioning(str(workdir)):  # an orphan must not outlive a failing test either
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except OSError:
                pass

"""`fleetflow demo`: the whole story, checked against the API, and a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.infra.broker import mosquitto_path

FLEETFLOW = str(Path(sys.executable).with_name("fleetflow"))


def _story(workdir, *extra):
    proc = subprocess.run([FLEETFLOW, "demo", "--exit", "--workdir", str(workdir), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NOT" not in proc.stdout
    return proc.stdout


def test_demo_exit_tells_the_whole_story_and_every_check_holds(tmp_path, procs_mentioning):
    out = _story(tmp_path / "demo")
    kind = "mosquitto" if mosquitto_path() else "amqtt"  # make demo's rule: Mosquitto when installed
    for line in (f"broker: {kind}", "20/20 devices online at the cloud",
                 "v1 deployment completed: 20/20 devices healthy",
                 "the rehearsal caught it: rehearsal: new error: ", "no device received v2; v2 is quarantined",
                 "the canary failed", "the deployment stopped and rolled back; the other 18 devices never received v2",
                 "the whole fleet still runs v1", "v3 rolled out in 4 batches: 20/20 devices healthy",
                 "every device reports v3", "The story is complete: all 10 checks held"):
        assert line in out, out
    assert procs_mentioning(str(tmp_path / "demo")) == []


def test_demo_on_the_embedded_amqtt_broker(tmp_path, procs_mentioning):
    """What `make demo` does where Mosquitto is not installed (10 devices to keep it short)."""
    out = _story(tmp_path / "demo", "--broker", "amqtt", "--devices", "10")
    for line in ("broker: amqtt", "10/10 devices online at the cloud", "the rehearsal caught it", "the canary failed",
                 "the other 9 devices never received v2", "v3 rolled out in 2 batches: 10/10 devices healthy",
                 "The story is complete: all 10 checks held"):
        assert line in out, out
    assert procs_mentioning(str(tmp_path / "demo")) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_demo_stops_everything_on_ctrl_c(tmp_path, procs_mentioning, sig):
    workdir = tmp_path / "demo"
    proc = subprocess.Popen([FLEETFLOW, "demo", "--devices", "10", "--workdir", str(workdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line)
            if "devices online at the cloud" in line or time.monotonic() > deadline:
                break
        assert procs_mentioning(str(workdir)), "the demo should be running devices by now"
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    out = "".join(lines) + rest
    assert "10/10 devices online" in out, out
    assert "Ctrl-C: stopping" in out and "stopped: devices, cloud and broker are down" in out, out
    assert procs_mentioning(str(workdir)) == []

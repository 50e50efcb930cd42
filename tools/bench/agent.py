"""Device agent heap: a simulated device (real firmware, MicroPython) at boot, online, running a flow.

Starts a broker (Mosquitto, else amqtt) and a SimDevice at the simulator's
heap (tools/simdevice.py HEAP; `--heap` or FLEETFLOW_SIM_HEAP to change it)
and reads the free heap the device reports -- gc.mem_free() after a
collect -- at three points:
- boot: the agent's "agent: booted, heap free N" log line (modules loaded,
  the slot store read, not connected yet);
- online, no flow: `status.heap` once online;
- running the 20-node flow: `health.heap` after the flow was deployed
  (signed deploy, confirmed by its health rule) and has run 5+ times.
The flow is inject (every 200 ms) -> 9 x (switch value > $floor, change
value + 1) -> mqtt_out: 20 nodes, as in `fleetflow bench device`.
Heap in use = heapsize - free.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from pathlib import Path

KEY = "42" * 32
DEV = "bench-dev"
N = 20


def flow(n: int = N) -> dict:
    """inject, then switch/change alternating, then mqtt_out: n nodes."""
    steps = [{"node": "inject", "params": {"payload": 1, "every": "200ms"}}]
    for i in range(n - 2):
        if i % 2 == 0:
            steps.append({"node": "switch", "params": {"property": "value", "op": "gt", "value": -1000}})
        else:
            steps.append({"node": "change", "params": {"property": "value", "action": "offset", "value": 1}})
    steps.append({"node": "mqtt_out", "params": {"topic": "tick", "qos": 0}})
    return {"steps": steps}


def _heap_bytes(text: str) -> int:
    return int(text[:-1]) * 1024 if text.lower().endswith("k") else int(text)


def add_arguments(parser) -> None:
    parser.add_argument("--heap", default=None,
                        help="MicroPython -X heapsize of the simulated device (default: the simulator's)")


def run(args) -> dict:
    import paho.mqtt.client as mqtt

    from shared_schema.compiler import compile_program
    from shared_schema.envelope import make_envelope
    from tools import simdevice
    from tools.broker import start_broker

    heap = getattr(args, "heap", None) or simdevice.HEAP
    got: dict[str, list] = {}
    cv = threading.Condition()

    def on_message(_c, _u, msg):
        with cv:
            got.setdefault(msg.topic, []).append(json.loads(msg.payload))
            cv.notify_all()

    def wait(topic, pred, timeout=30):
        deadline = time.monotonic() + timeout
        with cv:
            while True:
                for m in got.get(topic, []):
                    if pred(m):
                        return m
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing on {topic}")
                cv.wait(0.5)

    wf = flow()
    with tempfile.TemporaryDirectory() as tmp, \
            start_broker(Path(tmp) / "broker", users={"cloud": "pw", DEV: "devpw"}) as broker:
        cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        cloud.username_pw_set("cloud", "pw")
        cloud.on_message = on_message
        cloud.connect(broker.host, broker.port)
        cloud.subscribe(f"ff/{DEV}/#", qos=1)
        cloud.loop_start()
        old_heap, simdevice.HEAP = simdevice.HEAP, heap
        dev = simdevice.SimDevice(Path(tmp) / "dev", DEV, KEY, broker.host, broker.port, "devpw",
                                  settings={"health_interval_s": 1})
        try:
            dev.start()
            online = wait(f"ff/{DEV}/status", lambda s: s.get("state") == "online")["heap"]
            booted = re.search(r"agent: booted, heap free (\d+)", dev.log())
            prog = compile_program(wf, "unix-sim", "bench_flow", 1)
            cmd = dict(make_envelope(prog, DEV, bytes.fromhex(KEY), 1), id="b1", op="deploy",
                       health={"runs": 2, "seconds": 1})
            cloud.publish(f"ff/{DEV}/cmd", json.dumps(cmd), qos=1)
            wait(f"ff/{DEV}/ack", lambda a: a.get("id") == "b1" and a.get("state") == "healthy")
            running = wait(f"ff/{DEV}/health", lambda h: h.get("ver") == 1 and h.get("runs", 0) >= 5)
        except TimeoutError as e:
            return {"ok": False, "error": str(e), "heap": heap, "acks": got.get(f"ff/{DEV}/ack", []),
                    "device_log": dev.log()[-3000:]}
        finally:
            simdevice.HEAP = old_heap
            dev.kill()
            cloud.loop_stop()
            cloud.disconnect()
    total = _heap_bytes(heap)
    return {
        "ok": True,
        "heap_total_bytes": total,
        "heap_used_boot_bytes": total - int(booted.group(1)) if booted else None,
        "heap_used_online_no_flow_bytes": total - online,
        "heap_used_flow_running_bytes": total - running["heap"],
        "flow_nodes": len(wf["steps"]),
        "broker": broker.kind,
        "command": f"fleetflow bench agent --json --heap {heap}",
    }

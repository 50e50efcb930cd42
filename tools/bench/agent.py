"""Device agent heap: a simulated device (real firmware, MicroPython) online, then running a flow.

Starts a broker (Mosquitto, else amqtt) and a SimDevice, reads the free heap
the device reports (`status.heap`, `health.heap`: gc.mem_free() after a
collect) at boot and with a 3-node flow running, and prints heap in use.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

KEY = "42" * 32
DEV = "bench-dev"
FLOW = {"steps": [
    {"node": "inject", "params": {"payload": 1, "every": "200ms"}},
    {"node": "change", "params": {"property": "value", "action": "offset", "value": 1}},
    {"node": "mqtt_out", "params": {"topic": "tick", "qos": 0}},
]}


def _heap_bytes(text: str) -> int:
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def run(args) -> dict:
    import paho.mqtt.client as mqtt

    from shared_schema.compiler import compile_program
    from shared_schema.envelope import make_envelope
    from tools import simdevice
    from tools.broker import start_broker

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

    with tempfile.TemporaryDirectory() as tmp, \
            start_broker(Path(tmp) / "broker", users={"cloud": "pw", DEV: "devpw"}) as broker:
        cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        cloud.username_pw_set("cloud", "pw")
        cloud.on_message = on_message
        cloud.connect(broker.host, broker.port)
        cloud.subscribe(f"ff/{DEV}/#", qos=1)
        cloud.loop_start()
        dev = simdevice.SimDevice(Path(tmp) / "dev", DEV, KEY, broker.host, broker.port, "devpw",
                                  settings={"health_interval_s": 1})
        try:
            dev.start()
            boot = wait(f"ff/{DEV}/status", lambda s: s.get("state") == "online")["heap"]
            prog = compile_program(FLOW, "unix-sim", "bench_flow", 1)
            cmd = dict(make_envelope(prog, DEV, bytes.fromhex(KEY), 1), id="b1", op="deploy",
                       health={"runs": 2, "seconds": 1})
            cloud.publish(f"ff/{DEV}/cmd", json.dumps(cmd), qos=1)
            wait(f"ff/{DEV}/ack", lambda a: a.get("id") == "b1" and a.get("state") == "healthy")
            running = wait(f"ff/{DEV}/health", lambda h: h.get("ver") == 1 and h.get("runs", 0) >= 5)
        finally:
            dev.kill()
            cloud.loop_stop()
            cloud.disconnect()
    total = _heap_bytes(simdevice.HEAP)
    return {
        "heap_total_bytes": total,
        "heap_used_online_no_flow_bytes": total - boot,
        "heap_used_flow_running_bytes": total - running["heap"],
        "flow_nodes": len(FLOW["steps"]),
        "broker": broker.kind,
        "command": "fleetflow bench agent",
    }

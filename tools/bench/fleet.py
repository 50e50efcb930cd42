"""idle fleet: N simulated devices online, CPU and memory per idle device

    fleetflow bench fleet --devices 200 [--idle-s 20] [--json]

Starts a broker (Mosquitto, else amqtt) and the simulated fleet of
`fleetflow sim --no-cloud` (tools/sim/fleet.py: each device a MicroPython
unix-port process running the unix-sim bundle on its own LittleFS image,
with its own broker account), waits until every device has said online on
ff/<dev>/status, then lets them idle (no flow) for --idle-s seconds and
reports:
- devices_online: devices whose latest status is online at the end;
- idle_cpu_pct_per_device: the device processes' CPU time (user + system,
  /proc/<pid>/stat) over the idle window / the window's wall time / N,
  in % of one core. CPU time per process does not depend on what else
  loads the machine, so the figure holds on a busy one;
- wakeups_per_s_per_device: context switches of all of a device process's
  threads (/proc/<pid>/task/*/status) over the idle window / its wall time
  / N: an idle device should wake a few times a second (its loop at most
  once a second, the simulated watchdog once a second, the broker's
  keepalive), not every millisecond;
- rss_bytes_per_device: the mean resident set (/proc/<pid>/status VmRSS);
  pss_bytes_per_device the same with shared pages split between the
  processes that share them (/proc/<pid>/smaps_rollup Pss). A device process
  is CPython hosting the MicroPython unix port as an extension module (the
  PyPI `micropython` wrapper), so most of it is CPython's, not the firmware's
  (whose heap is the -X heapsize, tools/sim/simdevice.py HEAP).
- ping_ms_median: after the window, a `ping` command to each of up to 20
  idle devices, one at a time, until its `received` ack comes back: an idle
  device sleeps in select.poll on its socket, so this is how soon a command
  wakes it (the broker's and this process's latency included).
`ok` is false unless every device was online at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def add_arguments(parser) -> None:
    parser.add_argument("--devices", type=int, default=50, help="how many simulated devices (default 50)")
    parser.add_argument("--idle-s", type=float, default=20.0, help="the idle window, in seconds (default 20)")
    parser.add_argument("--plain-mqtt", action="store_true", help="plain MQTT instead of MQTT over TLS (the default)")
    parser.add_argument("--online-timeout-s", type=float, default=None,
                        help="how long to wait for every device to be online (default 30 s + 0.3 s a device)")


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (proc(5): fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _wakeups(pid: int) -> int:
    """Context switches of all of a process's threads (proc(5): each task's
    voluntary and nonvoluntary_ctxt_switches): how often it woke up, a count
    that a busy machine does not change as it changes CPU time."""
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            with open(task / "status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        n += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return n


def _mem_bytes(pid: int, path: str, key: str) -> int:
    with open(f"/proc/{pid}/{path}") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def run(args) -> dict:
    import paho.mqtt.client as mqtt

    from tools.infra.broker import start_broker
    from tools.sim.fleet import Fleet, device_ids
    from tools.infra.tls import client_context

    n = args.devices
    if n < 1:
        return {"ok": False, "error": f"--devices {n}: a fleet needs at least one device"}
    ids = device_ids(n, "bench")
    creds = {d: {"device_id": d, "mqtt_password": secrets.token_urlsafe(12), "key": secrets.token_hex(32)}
             for d in ids}
    status: dict[str, str] = {}
    acked: dict[str, float] = {}
    lock = threading.Lock()

    def on_message(_c, _u, msg):
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with lock:
            if msg.topic.endswith("/ack"):
                acked[doc.get("id")] = time.monotonic()
            else:
                status[msg.topic.split("/")[1]] = doc.get("state")

    def ping_ms(dev: str) -> float | None:
        cid = f"bench-ping-{dev}"
        t0 = time.monotonic()
        cloud.publish(f"ff/{dev}/cmd", json.dumps({"id": cid, "op": "ping"}), qos=1)
        while time.monotonic() - t0 < 10:
            with lock:
                if cid in acked:
                    return (acked[cid] - t0) * 1000
            time.sleep(0.001)
        return None

    def online() -> int:
        with lock:
            return sum(1 for d in ids if status.get(d) == "online")

    timeout = args.online_timeout_s or 30 + 0.3 * n
    plain = getattr(args, "plain_mqtt", False)
    command = f"fleetflow bench fleet --devices {n} --idle-s {args.idle_s:g} --json" + (" --plain-mqtt" if plain else "")
    # health every 30 s and keepalive 30 s: the firmware's defaults (fleetflow/config.py)
    with tempfile.TemporaryDirectory() as tmp, \
            start_broker(Path(tmp) / "broker", users={"cloud": "pw", **{d: c["mqtt_password"] for d, c in creds.items()}},
                         tls=not plain) as broker:
        if broker.tls:
            for c in creds.values():
                c["mqtt_ca"] = broker.ca_pem()
        cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        if broker.tls:
            cloud.tls_set_context(client_context(broker.tls.ca))
        cloud.username_pw_set("cloud", "pw")
        cloud.on_message = on_message
        cloud.on_connect = lambda c, *a: c.subscribe([("ff/+/status", 1), ("ff/+/ack", 1)])
        cloud.connect(broker.host, broker.port)
        cloud.loop_start()
        fleet = Fleet(Path(tmp) / "fleet", n, mqtt_host=broker.host, mqtt_port=broker.port,
                      provision=lambda dev, board: creds[dev], prefix="bench", profile="steady", log=lambda m: None)
        try:
            t0 = time.monotonic()
            fleet.start()
            while online() < n and time.monotonic() - t0 < timeout:
                time.sleep(0.5)
            t_online = time.monotonic() - t0
            if online() < n:
                return {"ok": False, "devices": n, "devices_online": online(), "broker": broker.kind,
                        "error": f"only {online()} of {n} devices online after {timeout:g} s", "command": command}
            time.sleep(2)  # the last ones to connect finish their first status and health
            pids = [dev.proc.pid for dev in fleet.devices.values()]
            c0, k0, w0 = sum(_cpu_ticks(p) for p in pids), sum(_wakeups(p) for p in pids), time.monotonic()
            time.sleep(args.idle_s)
            c1, k1, w1 = sum(_cpu_ticks(p) for p in pids), sum(_wakeups(p) for p in pids), time.monotonic()
            rss = sum(_mem_bytes(p, "status", "VmRSS:") for p in pids) / len(pids)
            pss = sum(_mem_bytes(p, "smaps_rollup", "Pss:") for p in pids) / len(pids)
            running = len(fleet.running())
            pings = sorted(p for p in (ping_ms(d) for d in ids[:20]) if p is not None)
            result = {
                "ok": online() == n and running == n,
                "devices": n,
                "devices_online": online(),
                "idle_cpu_pct_per_device": round(100.0 * (c1 - c0) / _TICKS / (w1 - w0) / n, 4),
                "wakeups_per_s_per_device": round((k1 - k0) / (w1 - w0) / n, 1),
                "rss_bytes_per_device": int(rss),
                "pss_bytes_per_device": int(pss),
                "ping_ms_median": round(pings[len(pings) // 2], 1) if pings else None,
                "idle_window_s": round(w1 - w0, 1),
                "seconds_to_all_online": round(t_online, 1),
                "broker": broker.kind,
                "tls": broker.tls is not None,
                "command": command,
            }
        finally:
            fleet.stop()
            cloud.loop_stop()
            cloud.disconnect()
    return result

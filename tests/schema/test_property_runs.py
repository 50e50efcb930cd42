"""Property: a valid definition, compiled and run by the firmware under MicroPython, does
what an independent CPython reference evaluation (tests/schema/reference.py) says.

Hypothesis generates batches of valid graph-form definitions over the
sources, logic and sinks whose behaviour the docs pin down, with scripted
sensor values (DHT22 readings and failures, ADC levels) and per-run variable
and param overrides. Each batch is compiled by shared_schema, then run in
ONE MicroPython process on the unix-sim board (program loader, interpreter,
simulated HAL); every run's routing (which node ran, on which port),
published messages, pin levels and status must match the reference.
Values are multiples of 0.5, exact in binary, so both sides compute the
same floats.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema.compiler import compile_program

from .device_lines import BOARD, run_lines
from .reference import Reference

pytestmark = pytest.mark.slow

DHT_PINS, ADC_PINS, OUT_PINS = [4, 5, 12, 13], [32, 33, 34, 35], [14, 15, 16, 17, 18, 19]
RUNS = 4

HARNESS_SETUP = """
from fleetflow.interp import Interpreter
from fleetflow.hal import get_hal
"""
HARNESS = r"""
case = json.loads(line)
line = None
hal = get_hal("unix-sim", case["sim"])
pubs = []
it = Interpreter(load_program(case["prog"], table, board), hal,
                 publish=lambda t, p, q, r: pubs.append([t, json.loads(p)]))
res = []
for run in case["runs"]:
    for pin in run["adc"]:
        hal.set_adc(int(pin), run["adc"][pin])
    del pubs[:]
    rec = it.run_now(run["ov"], exec_id="x", now_ms=run["t"])
    res.append({"status": rec["status"], "err": rec["err"],
                "rows": [[n["id"], n["port"]] for n in rec["nodes"]], "pub": list(pubs),
                "pins": dict((str(p), hal.pin(p).value()) for p in case["outs"])})
it.stop()
print(json.dumps(res))
case = it = hal = None
gc.collect()
"""


def halves(lo: int, hi: int):
    return st.integers(lo * 2, hi * 2).map(lambda k: k / 2)


@st.composite
def flows(draw):
    """(definition, sim config, runs) for one valid flow."""
    nodes, conns, variables, sim = [], [], [], {"dht": {}}
    dht_pins, adc_pins, out_pins = list(DHT_PINS), list(ADC_PINS), list(OUT_PINS)
    adc_used = []
    if draw(st.booleans()):
        variables.append({"name": "thr", "type": "number", "value": str(draw(halves(18, 24)))})  # a string: coerced
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["dht", "adc", "inject"]))
        nid = f"n{len(nodes) + 1}"
        if kind == "dht":
            pin = dht_pins.pop(draw(st.integers(0, len(dht_pins) - 1)))
            step = st.one_of(st.tuples(halves(18, 24), halves(40, 45)).map(list), st.sampled_from(["timeout", "checksum"]))
            sim["dht"][str(pin)] = {"script": draw(st.lists(step, min_size=1, max_size=8))}
            config = {"pin": pin, "retries": draw(st.integers(0, 2))}
        elif kind == "adc":
            pin = adc_pins.pop(draw(st.integers(0, len(adc_pins) - 1)))
            adc_used.append(pin)
            config = {"pin": pin, "scale": draw(st.sampled_from([0.5, 1])), "offset": draw(halves(-5, 5))}
        else:
            config = {"payload": draw(halves(18, 24))}
        nodes.append({"id": nid, "type": kind, "name": kind, "config": config, "x": 0, "y": 0})
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["switch", "switch", "change", "counter", "deadband", "mqtt_out", "mqtt_out", "gpio_out"]))
        nid = f"n{len(nodes) + 1}"
        if kind == "switch":
            op = draw(st.sampled_from(["gt", "lt", "ge", "le", "eq", "ne", "between"]))
            value = "$thr" if variables and draw(st.booleans()) else draw(halves(18, 24))
            config = {"op": op, "value": value, "hysteresis": draw(st.sampled_from([0, 0.5, 2]))}
            if op == "between":
                config["value"] = draw(halves(16, 22))
                config["value2"] = config["value"] + draw(halves(0, 4))
        elif kind == "change":
            action = draw(st.sampled_from(["set", "scale", "offset"]))
            config = {"action": action, "value": draw(halves(0, 3) if action == "scale" else halves(-2, 22))}
        elif kind == "counter":
            config = {"reset_every": draw(st.sampled_from([0, 2000]))}
        elif kind == "deadband":
            config = {"delta": draw(st.sampled_from([0, 0.5, 2])), "max_silence": draw(st.sampled_from([0, 2000]))}
        elif kind == "mqtt_out":
            config = {"topic": f"t/{nid}", "qos": draw(st.integers(0, 1))}
        else:
            if not out_pins:
                continue
            pin = out_pins.pop(draw(st.integers(0, len(out_pins) - 1)))
            config = {"pin": pin, "mode": draw(st.sampled_from(["set", "toggle", "follow"])), "value": draw(st.integers(0, 1))}
        preds = draw(st.lists(st.integers(0, len(nodes) - 1), min_size=1, max_size=2, unique=True))
        for src in preds:
            port = draw(st.integers(0, 1)) if nodes[src]["type"] == "switch" else 0
            conns.append({"source": nodes[src]["id"], "target": nid, "port": port})
        nodes.append({"id": nid, "type": kind, "config": config})
    runs = []
    for k in range(RUNS):
        ov = None
        if variables and draw(st.booleans()):
            ov = {"vars": {"thr": draw(halves(18, 24))}}
        runs.append({"t": 1000 * (k + 1), "adc": {str(p): draw(st.integers(30, 50)) for p in adc_used}, "ov": ov})
    return {"nodes": nodes, "connections": conns, "variables": variables}, sim, runs


def _close(a, b) -> bool:
    """Equal JSON values; numbers equal within float noise of the text round trip."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def _rows(rows):
    return sorted(rows, key=lambda r: (r[0], -1 if r[1] is None else r[1]))


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(flows(), min_size=16, max_size=16))
def test_firmware_runs_match_the_reference(mpy, batch):
    cases, expected = [], []
    for i, (definition, sim, runs) in enumerate(batch):
        program = compile_program({"name": f"p{i}", "definition": definition}, BOARD, f"prop{i}", 1)
        outs = sorted(n["config"]["pin"] for n in definition["nodes"] if n["type"] == "gpio_out")
        cases.append({"prog": program.text, "sim": sim, "runs": runs, "outs": outs})
        ref = Reference(definition, sim)
        expected.append([ref.run(r["adc"], r["ov"], r["t"]) for r in runs])
    got = run_lines(mpy, HARNESS, [json.dumps(c) for c in cases], setup=HARNESS_SETUP)
    assert len(got) == len(cases)
    for (definition, _sim, runs), device, ref in zip(batch, got, expected):
        for k, (d, r) in enumerate(zip(device, ref)):
            where = f"run {k} of {json.dumps(definition)} with {json.dumps(runs[k])}"
            assert d["status"] == r["status"], f"{where}: {d['err']}"
            assert _rows(d["rows"]) == _rows(r["rows"]), where
            assert _close(d["pub"], r["pub"]), where
            assert {int(p): v for p, v in d["pins"].items()} == {p: r["pins"].get(p, 0) for p in map(int, d["pins"])}, where

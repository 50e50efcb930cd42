"""The compiler's output is what the firmware runs: flows from the seeds and
examples, compiled by shared_schema for unix-sim, load and run on the
device under MicroPython -- the contract of docs/program-format.md from
both ends."""

import json
from pathlib import Path

import pytest

from shared_schema.compiler import compile_program

ROOT = Path(__file__).resolve().parents[2]

SEED_001 = {"definition": {
    "nodes": [
        {"id": "n1", "type": "dht", "name": "DHT22 Sensor", "config": {"pin": 4}, "x": 100, "y": 200},
        {"id": "n2", "type": "switch", "name": "Threshold", "config": {}, "x": 300, "y": 200},
        {"id": "n3", "type": "mqtt_out", "name": "Alert", "config": {}, "x": 500, "y": 200},
    ],
    "connections": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3"}],
    "variables": [{"name": "threshold", "type": "number", "value": "30"}],
}}
SEED_000 = {"name": "maintenance-routine", "steps": [
    {"node": "clear-cache", "params": {}},
    {"node": "toggle-feature", "params": {"name": "debug-overlay", "enabled": False}},
    {"node": "set-log-level", "params": {"level": "warning"}},
]}

BODY = r'''
import sys
progs = json.loads(sys.stdin.read())
pub = []
# seed 001 as written (pins named): dht -> switch (value > 0) -> mqtt_out "events"
it, hal = None, get_hal("unix-sim", {"dht": {"4": {"script": [[22.5, 40.0]]}}})
p = load_program(progs["seed1"], TABLE, BOARD)
it = Interpreter(p, hal, publish=lambda t, m, q, r: pub.append([t, json.loads(m), q, r]))
it.start(0)
OUT["seed1"] = [it.poll(0), pub, it.records.take()[0]["status"]]
# seed 000, the step form: maintenance steps in order, on demand
p = load_program(progs["seed0"], TABLE, BOARD)
it = Interpreter(p, get_hal("unix-sim", {}))
r = it.run_now(exec_id="x1", now_ms=0)
OUT["seed0"] = [r["status"], [n["type"] for n in r["nodes"]], it.dev.features, it.dev.log_level]
# the repository's example flow, with an override of its variable
p = load_program(progs["example"], TABLE, BOARD)
pub2 = []
it = Interpreter(p, get_hal("unix-sim", {"dht": {"4": {"script": [[28.04, 40.0]]}}}),
                 publish=lambda t, m, q, r: pub2.append([t, json.loads(m)]))
OUT["example"] = [[n["port"] for n in it.run_now(now_ms=0)["nodes"]],
                  [n["port"] for n in it.run_now({"vars": {"threshold": 25}}, now_ms=1)["nodes"]], pub2]
'''


@pytest.fixture(scope="module")
def out(device):
    example = json.loads((ROOT / "examples" / "temperature-alert.json").read_text())
    progs = {
        "seed1": compile_program(SEED_001, "unix-sim", "flow_seed1", 1).data.decode(),
        "seed0": compile_program(SEED_000, "unix-sim", "flow_seed0", 1).data.decode(),
        "example": compile_program(example, "unix-sim", "flow_example", 2).data.decode(),
    }
    return device(BODY, stdin=json.dumps(progs))


def test_seed_001_runs_with_catalog_defaults(out):
    runs, published, status = out["seed1"]
    assert runs == 1 and status == "completed"
    assert published == [["events", {"value": 22.5, "temperature": 22.5, "humidity": 40.0}, 0, False]]


def test_seed_000_step_form_runs_in_order(out):
    status, types, features, level = out["seed0"]
    assert status == "completed" and types == ["clear_cache", "toggle_feature", "set_log_level"]
    assert features == {"debug-overlay": False} and level == "warning"


def test_example_flow_routes_and_takes_overrides(out):
    plain, overridden, published = out["example"]
    # dht, change (round), switch: 28.0 is not above 30; with threshold 25 it is, and mqtt_out runs
    assert plain == [0, 0, 1] and overridden == [0, 0, 0, 0]
    assert published == [["alert", {"value": 28.0, "temperature": 28.0, "humidity": 40.0}]]

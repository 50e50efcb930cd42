"""Bad programs are refused at load with a reason naming the node and the
param, and no input -- malformed, mutated or random bytes -- gets any other
exception out of load_program. Under MicroPython."""

import json
import random

import pytest

GOOD = {
    "f": 1, "flow": "flow_abc", "ver": 3, "board": "unix-sim", "vars": {"threshold": 30},
    "limits": {"steps": 64, "run_ms": 200},
    "nodes": [
        {"id": "n1", "type": "dht", "params": {"pin": 4, "model": "dht22", "every": 2000, "retries": 2}},
        {"id": "n2", "type": "switch", "params": {"property": "temperature", "op": "gt", "value": "$threshold",
                                                  "value2": 0, "hysteresis": 0}},
        {"id": "n3", "type": "gpio_out", "params": {"pin": 5, "mode": "set", "value": 1, "pulse_ms": 100},
         "on_failure": "continue", "retries": 2, "backoff_ms": 20},
        {"id": "n4", "type": "mqtt_out", "params": {"topic": "alert", "qos": 1, "retain": False}},
    ],
    "edges": [[0, 0, 1], [1, 0, 2], [1, 0, 3]],
}


def mutate(path, value=None, delete=False):
    doc = json.loads(json.dumps(GOOD))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


# (program text, substrings the reason must contain)
BAD = [
    ("{", ["malformed JSON"]),
    ("[]", ["want a JSON object"]),
    (mutate(["f"], 2), ["program.f", "unsupported format"]),
    (mutate(["f"], delete=True), ["program.f"]),
    (mutate(["board"], "esp32-devkitc"), ["program.board", "compiled for esp32-devkitc"]),
    (mutate(["ver"], "3"), ["program.ver"]),
    (mutate(["nodes"], []), ["program.nodes"]),
    (mutate(["nodes", 1, "type"], "thermostat"), ["n2.type", "unknown node type thermostat"]),
    (mutate(["nodes", 1, "id"], "n1"), ["n1", "duplicate node id"]),
    (mutate(["nodes", 0, "params", "pin"], None), ["n1.pin", "GPIO number"]),
    (mutate(["nodes", 0, "params"], {}), ["n1.pin", "required param missing"]),
    (mutate(["nodes", 0, "params", "every"], "2s"), ["n1.every", "integer (ms)"]),
    (mutate(["nodes", 0, "params", "every"], 100), ["n1.every", "below min 2000"]),
    (mutate(["nodes", 0, "params", "retries"], 9), ["n1.retries", "above max 5"]),
    (mutate(["nodes", 0, "params", "model"], "dht33"), ["n1.model", "dht22|dht11"]),
    (mutate(["nodes", 0, "params", "colour"], "red"), ["n1.colour", "unknown param of dht"]),
    (mutate(["nodes", 0, "params", "pin"], 34), None),      # input-only GPIO: fine for a sensor
    (mutate(["nodes", 2, "params", "pin"], 34), ["n3.pin", "GPIO 34 can't be used as out"]),
    (mutate(["nodes", 2, "params", "pin"], 7), ["n3.pin", "GPIO 7 is reserved"]),
    (mutate(["nodes", 2, "params", "pin"], 24), ["n3.pin", "no GPIO 24"]),
    (mutate(["nodes", 2, "params", "pin"], 4), ["n3.pin", "GPIO 4 already used by n1"]),
    (mutate(["nodes", 1, "params", "value"], "$limit"), ["n2.value", "unknown variable $limit"]),
    (mutate(["nodes", 1, "params", "value"], "warm"), ["n2.value", "number"]),
    (mutate(["nodes", 1, "params", "op"], ">"), ["n2.op"]),
    (mutate(["vars", "threshold"], "hot"), ["n2.value", "number"]),
    (mutate(["nodes", 2, "on_failure"], "retry"), ["n3.on_failure"]),
    (mutate(["nodes", 2, "retries"], 10), ["n3.retries"]),
    (mutate(["nodes", 2, "backoff_ms"], -1), ["n3.backoff_ms"]),
    (mutate(["nodes", 3, "params", "topic"], "a/#"), ["n4.topic", "#"]),
    (mutate(["nodes", 3, "params", "qos"], 2), ["n4.qos", "above max 1"]),
    (mutate(["nodes", 3, "colour"], 1), ["n4.colour", "unknown key"]),
    (mutate(["edges", 2], [3, 0, 1]), ["program.edges[2]", "n4 -> n2", "backward"]),
    (mutate(["edges", 2], [1, 0, 1]), ["program.edges[2]", "n2 -> n2"]),
    (mutate(["edges", 2], [1, 2, 3]), ["program.edges[2]", "n2 (switch) has no output port 2"]),
    (mutate(["edges", 2], [1, 0, 9]), ["program.edges[2]", "out of range"]),
    (mutate(["edges", 2], [1, 0, 2]), ["duplicate edge"]),
    (mutate(["edges", 2], [1, 0]), ["program.edges[2]", "[from, port, to]"]),
    (mutate(["edges", 0], [0, 0, 0]), ["program.edges[0]", "backward"]),
    (mutate(["limits", "steps"], 2), ["program.limits.steps", "below the node count 4"]),
    (mutate(["limits", "run_ms"], 0), ["program.limits.run_ms"]),
    (mutate(["limits", "cpu"], 1), ["program.limits.cpu", "unknown limit"]),
    (json.dumps(dict(GOOD, nodes=GOOD["nodes"] * 20)), ["bytes over the limit"]),
    (json.dumps(dict(GOOD, nodes=[{"id": "x%d" % i, "type": "counter"} for i in range(65)])),
     ["65 nodes over the limit of 64"]),
]
# a source takes no input
BAD.append((json.dumps(dict(GOOD, edges=GOOD["edges"] + [[1, 1, 0]])), ["backward"]))
_two_sources = json.loads(json.dumps(GOOD))
_two_sources["nodes"].append({"id": "n5", "type": "inject", "params": {}})
_two_sources["edges"].append([0, 0, 4])
BAD.append((json.dumps(_two_sources), ["n5 (inject) is a source and takes no input"]))


def _fuzz_cases(seed=2026, count=300) -> list[str]:
    """Mutated good programs and random bytes (as latin-1 text)."""
    rng = random.Random(seed)
    text = json.dumps(GOOD)
    cases = []
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:       # flip characters
            chars = list(text)
            for _ in range(rng.randrange(1, 6)):
                chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
            cases.append("".join(chars))
        elif kind == 1:     # truncate
            cases.append(text[: rng.randrange(len(text))])
        elif kind == 2:     # random bytes
            cases.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1"))
        else:               # structurally odd but valid JSON
            doc = json.loads(text)
            victim = rng.choice(["nodes", "edges", "vars", "limits", "flow", "ver"])
            doc[victim] = rng.choice([None, 0, -1, 1.5, "", "x", [], {}, [[]], [None], [{}], [1, 2, 3],
                                      {"a": []}, [[0, 0, 0]], 10 ** 30, True])
            cases.append(json.dumps(doc))
    return cases


BODY = r'''
import sys
cases = json.loads(sys.stdin.read())
OUT["bad"] = [refuse(c) for c in cases["bad"]]
OUT["good"] = refuse(cases["good"])
odd = []
for c in cases["fuzz"]:
    try:
        load_program(c, TABLE, BOARD)
    except FFError:
        pass
    except Exception as e:
        odd.append("%s: %s" % (type(e).__name__, e))
OUT["fuzz_odd"] = odd
OUT["fuzz_n"] = len(cases["fuzz"])
# bytes in, and a type map of the compiled program kept
p = load_program(cases["good"].encode(), TABLE, BOARD)
OUT["loaded"] = [p.flow, p.ver, p.n, p.ids, p.types, p.steps, p.run_ms, p.every, p.continue_on(2),
                 p.targets(1, 0), p.targets(1, 1), p.targets(3, 0)]
# "-" for "_" in type ids, "$$" for a literal "$"
p = load_program(json.dumps({"f": 1, "flow": "m", "ver": 1, "nodes": [
    {"id": "a", "type": "set-log-level", "params": {"level": "warning"}},
    {"id": "b", "type": "mqtt_out", "params": {"topic": "$$x"}}]}), TABLE)
OUT["aliases"] = [p.types, p.cfgs[1]]
# the checking code (loader, overrides, params) is in the heap only while it
# checks: let go after a load and after a run's overrides (fleetflow.program)
import fleetflow
ov = p.cfgs_for({"params": {"b": {"topic": "y"}}})
OUT["checking_code_left"] = [ov[1][0], p.cfgs[1][0]] + [
    n for n in ("loader", "overrides", "params") if "fleetflow." + n in sys.modules or hasattr(fleetflow, n)]
# the agent's board keeps only its name and limits in RAM (fleetflow.config):
# the pin map is read from board.json while a program is checked
slim = {"name": "unix-sim", "program_max_bytes": 8192, "path": BOARD_PATH}
OUT["slim_board"] = [refuse(c, slim) for c in cases["pins"]]
# ... or, once fleetflow.config wrote it at boot, from the pin index, a line a pin
import os, random
from fleetflow import config
index = "/tmp/ff_pins_%d.txt" % random.getrandbits(30)
written = config.write_pin_index(BOARD, index)
indexed = {"name": "unix-sim", "program_max_bytes": 8192, "path": "/nonexistent/board.json", "pin_index": index}
OUT["indexed_board"] = [written] + [refuse(c, indexed) for c in cases["pins"]]
os.remove(index)
# a board without the node compiled in
small = nt.load_table(["dht", "switch"])
OUT["not_compiled"] = None
try:
    load_program(cases["good"], small, BOARD)
except FFError as e:
    OUT["not_compiled"] = e.args[0]
'''


@pytest.fixture(scope="module")
def out(device):
    payload = json.dumps({"bad": [text for text, _ in BAD], "good": json.dumps(GOOD), "fuzz": _fuzz_cases(),
                          "pins": [text for text, _ in PIN_CASES]})
    return device(BODY, stdin=payload)


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_program_is_refused_with_a_reason(out, case):
    reason = out["bad"][case]
    text, wanted = BAD[case]
    if wanted is None:
        assert reason is None
        return
    assert reason is not None, "accepted: " + text[:200]
    for part in wanted:
        assert part in reason, reason


def test_good_program_loads(out):
    assert out["good"] is None
    flow, ver, n, ids, types, steps, run_ms, every, cont, t10, t11, t30 = out["loaded"]
    assert (flow, ver, n, ids) == ("flow_abc", 3, 4, ["n1", "n2", "n3", "n4"])
    assert types == ["dht", "switch", "gpio_out", "mqtt_out"]
    assert (steps, run_ms, every, cont) == (64, 200, {"0": 2000}, True)
    assert (t10, t11, t30) == ([2, 3], [], [])


def test_the_checking_code_is_let_go_after_a_check(out):
    # the override applied to the run's copy only, and no checking module left loaded
    assert out["checking_code_left"] == ["y", "$x"]


def test_type_aliases_and_literal_dollar(out):
    types, mqtt_cfg = out["aliases"]
    assert types == ["set_log_level", "mqtt_out"]
    assert mqtt_cfg[0] == "$x"


PIN_CASES = [
    (json.dumps(GOOD), None),
    (mutate(["nodes", 2, "params", "pin"], 34), "n3.pin: GPIO 34 can't be used as out (it can: in,adc)"),
    (mutate(["nodes", 2, "params", "pin"], 7), "n3.pin: GPIO 7 is reserved (SPI flash (SD0)"),
    (mutate(["nodes", 2, "params", "pin"], 24), "n3.pin: board unix-sim has no GPIO 24"),
]


def test_the_agents_board_reads_its_pin_map_from_board_json(out):
    # the agent's board dict has no pins (fleetflow.config: ~5.5 KB of heap
    # saved); the check reads them from the board file and refuses the same
    for reason, (_text, wanted) in zip(out["slim_board"], PIN_CASES):
        if wanted is None:
            assert reason is None
        else:
            assert reason is not None and reason.startswith(wanted), reason


def test_the_agents_board_looks_its_pins_up_in_the_index_written_at_boot(out):
    # fleetflow.config writes the pin map as one line a pin (no board.json
    # parsed at a check: the board's path here does not even exist)
    written, *reasons = out["indexed_board"]
    assert written is True
    for reason, (_text, wanted) in zip(reasons, PIN_CASES):
        if wanted is None:
            assert reason is None
        else:
            assert reason is not None and reason.startswith(wanted), reason


def test_a_node_the_board_lacks_is_refused(out):
    assert "n3.type" in out["not_compiled"] and "unknown node type gpio_out" in out["not_compiled"]


def test_fuzzed_programs_never_raise_anything_but_fferror(out):
    assert out["fuzz_n"] == 300
    assert out["fuzz_odd"] == []

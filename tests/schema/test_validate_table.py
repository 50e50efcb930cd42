"""validate_flow on invalid definitions: each case names the exact pointers of its problems.

Every case starts from one valid flow (BASE), applies a few edits, and asserts
the full list of problem pointers, so a case also proves nothing *else* is
reported, and that each message says something specific.
"""

from __future__ import annotations

import copy

import pytest

from shared_schema.boards import load_board
from shared_schema.validate import validate_flow

ESP32 = load_board("esp32-devkitc")
PICO = load_board("rp2-pico-w")
NO_GPIO_OUT = ESP32.model_copy(update={"nodes": [t for t in ESP32.nodes if t != "gpio_out"]})
TINY = ESP32.model_copy(update={"program_max_bytes": 300})

BASE = {
    "name": "greenhouse",
    "definition": {
        "nodes": [
            {"id": "n1", "type": "dht", "name": "DHT22", "config": {"pin": 4}, "x": 100, "y": 200},
            {"id": "n2", "type": "switch", "config": {"value": "$threshold"}},
            {"id": "n3", "type": "gpio_out", "config": {"pin": 5}},
            {"id": "n4", "type": "mqtt_out", "config": {"topic": "alert"}},
        ],
        "connections": [
            {"source": "n1", "target": "n2"},
            {"source": "n2", "target": "n3"},
            {"source": "n2", "target": "n4", "port": 1},
        ],
        "variables": [{"name": "threshold", "type": "number", "value": "30"}],
    },
}
STEPS = {"name": "maint", "steps": [
    {"node": "clear-cache", "params": {}},
    {"node": "toggle-feature", "params": {"name": "debug-overlay", "enabled": False}},
    {"node": "set-log-level", "params": {"level": "warning"}},
]}


def _walk(doc, path):
    parts = [p for p in path.split("/")[1:]]
    for p in parts[:-1]:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    last = parts[-1]
    return doc, (int(last) if isinstance(doc, list) and last != "-" else last)


def edited(base, *ops):
    doc = copy.deepcopy(base)
    for op, path, *value in ops:
        parent, key = _walk(doc, path)
        if op == "set":
            parent[key] = value[0]
        elif op == "del":
            del parent[key]
        elif op == "add":  # append to the list at path
            (parent[key]).append(value[0])
    return doc


def node(path, **fields):
    return ("add", "/definition/nodes", dict(fields))


CASES = [
    # (case id, body, board, expected pointers, a word the first message must contain)
    ("unknown type", edited(BASE, ("set", "/definition/nodes/1/type", "swtich")), ESP32, ["/definition/nodes/1/type"], "did you mean 'switch'"),
    ("type not on board", BASE, NO_GPIO_OUT, ["/definition/nodes/2/type"], "not compiled into board"),
    ("missing type", edited(BASE, ("del", "/definition/nodes/3/type")), ESP32, ["/definition/nodes/3/type"], "missing node type"),
    ("missing required pin", edited(BASE, ("del", "/definition/nodes/0/config/pin")), ESP32, ["/definition/nodes/0/config/pin"], "missing required param 'pin'"),
    ("ill-typed int", edited(BASE, ("set", "/definition/nodes/0/config/retries", "2")), ESP32, ["/definition/nodes/0/config/retries"], "expected an integer between 0 and 5"),
    ("int out of bounds", edited(BASE, ("set", "/definition/nodes/0/config/retries", 9)), ESP32, ["/definition/nodes/0/config/retries"], "between 0 and 5"),
    ("enum not a choice", edited(BASE, ("set", "/definition/nodes/0/config/model", "dht23")), ESP32, ["/definition/nodes/0/config/model"], "'dht22', 'dht11'"),
    ("duration unreadable", edited(BASE, ("set", "/definition/nodes/0/config/every", "soon")), ESP32, ["/definition/nodes/0/config/every"], "'2s'"),
    ("duration below min", edited(BASE, ("set", "/definition/nodes/0/config/every", "1s")), ESP32, ["/definition/nodes/0/config/every"], "between 2000"),
    ("unknown param", edited(BASE, ("set", "/definition/nodes/0/config/pinn", 4)), ESP32, ["/definition/nodes/0/config/pinn"], "did you mean 'pin'"),
    ("bool ill-typed", edited(BASE, ("set", "/definition/nodes/3/config/retain", "yes")), ESP32, ["/definition/nodes/3/config/retain"], "true or false"),
    ("qos out of bounds", edited(BASE, ("set", "/definition/nodes/3/config/qos", 2)), ESP32, ["/definition/nodes/3/config/qos"], "between 0 and 1"),
    ("unresolved var", edited(BASE, ("set", "/definition/nodes/1/config/value", "$treshold")), ESP32, ["/definition/nodes/1/config/value"], "did you mean 'threshold'"),
    ("var of wrong type", edited(BASE, ("add", "/definition/variables", {"name": "mode", "type": "string", "value": "fast"}),
                                 ("set", "/definition/nodes/0/config/retries", "$mode")), ESP32, ["/definition/nodes/0/config/retries"], "declared string"),
    ("var value out of bounds", edited(BASE, ("add", "/definition/variables", {"name": "r", "type": "integer", "value": 9}),
                                       ("set", "/definition/nodes/0/config/retries", "$r")), ESP32, ["/definition/nodes/0/config/retries"], "does not fit"),
    ("duration var as text", edited(BASE, ("add", "/definition/variables", {"name": "poll", "type": "string", "value": "2s"}),
                                    ("set", "/definition/nodes/0/config/every", "$poll")), ESP32, ["/definition/nodes/0/config/every"], "variable 'poll'"),
    ("bad var ref syntax", edited(BASE, ("set", "/definition/nodes/1/config/property", "$1x")), ESP32, ["/definition/nodes/1/config/property"], "'$$1x'"),
    ("var value uncoercible", edited(BASE, ("set", "/definition/variables/0/value", "warm")), ESP32, ["/definition/variables/0/value", "/definition/nodes/1/config/value"], "not a number"),
    ("var type unknown", edited(BASE, ("set", "/definition/variables/0/type", "float")), ESP32, ["/definition/variables/0/type", "/definition/nodes/1/config/value"], "number"),
    ("duplicate variable", edited(BASE, ("add", "/definition/variables", {"name": "threshold", "value": 3})), ESP32, ["/definition/variables/1/name"], "declared twice"),
    ("duplicate node id", edited(BASE, ("set", "/definition/nodes/3/id", "n3")), ESP32, ["/definition/nodes/3/id", "/definition/connections/2/target", "/definition/nodes/3"], "duplicate node id 'n3'"),
    ("empty node id", edited(BASE, ("add", "/definition/nodes", {"id": "", "type": "log"}), ("add", "/definition/connections", {"source": "n4", "target": ""})),
     ESP32, ["/definition/nodes/4/id", "/definition/connections/3/target", "/definition/nodes/4"], "non-empty string id"),
    ("empty step id", edited(STEPS, ("set", "/steps/1/id", "")), ESP32, ["/steps/1/id"], "non-empty"),
    ("dangling target", edited(BASE, ("add", "/definition/connections", {"source": "n4", "target": "n7"})), ESP32, ["/definition/connections/3/target"], "no node has id 'n7'"),
    ("missing source", edited(BASE, ("add", "/definition/connections", {"target": "n3"})), ESP32, ["/definition/connections/3/source"], "missing source"),
    ("port the node lacks", edited(BASE, ("add", "/definition/connections", {"source": "n4", "target": "n3", "port": 2})), ESP32, ["/definition/connections/3/port"], "1 output port"),
    ("switch port 2", edited(BASE, ("set", "/definition/connections/2/port", 2)), ESP32, ["/definition/connections/2/port", "/definition/nodes/3"], "2 output ports"),
    ("port not a number", edited(BASE, ("set", "/definition/connections/1/port", "yes")), ESP32, ["/definition/connections/1/port", "/definition/nodes/2"], "output port number"),
    ("self-loop", edited(BASE, ("add", "/definition/connections", {"source": "n3", "target": "n3"})), ESP32, ["/definition/connections/3"], "itself"),
    ("cycle", edited(BASE, ("add", "/definition/connections", {"source": "n3", "target": "n2"})), ESP32, ["/definition/connections/3"], "'n2' -> 'n3' -> 'n2'"),
    ("into a source", edited(BASE, ("add", "/definition/connections", {"source": "n4", "target": "n1"})), ESP32, ["/definition/connections/3/target"], "takes no input"),
    ("duplicate connection", edited(BASE, ("add", "/definition/connections", {"source": "n1", "target": "n2", "port": 0})), ESP32, ["/definition/connections/3"], "duplicate connection"),
    ("unreachable node", edited(BASE, ("add", "/definition/nodes", {"id": "n5", "type": "log"})), ESP32, ["/definition/nodes/4"], "not reachable"),
    ("pin absent", edited(BASE, ("set", "/definition/nodes/2/config/pin", 20)), ESP32, ["/definition/nodes/2/config/pin"], "does not exist"),
    ("pin above 39", edited(BASE, ("set", "/definition/nodes/2/config/pin", 40)), ESP32, ["/definition/nodes/2/config/pin"], "does not exist"),
    ("pin of the flash", edited(BASE, ("set", "/definition/nodes/2/config/pin", 6)), ESP32, ["/definition/nodes/2/config/pin"], "SPI flash"),
    ("input-only as output", edited(BASE, ("set", "/definition/nodes/2/config/pin", 34)), ESP32, ["/definition/nodes/2/config/pin"], "input-only"),
    ("no ADC on pin (ADC2 with WiFi)", edited(BASE, ("set", "/definition/nodes/0/type", "adc")), ESP32, ["/definition/nodes/0/config/pin"], "32-36, 39"),
    ("pico wireless pin", edited(BASE, ("set", "/definition/nodes/2/config/pin", 23)), PICO, ["/definition/nodes/2/config/pin"], "wireless"),
    ("pico ADC outside 26-28", edited(BASE, ("set", "/definition/nodes/0/type", "adc"), ("set", "/definition/nodes/0/config/pin", 22)), PICO, ["/definition/nodes/0/config/pin"], "26-28"),
    ("pin as text", edited(BASE, ("set", "/definition/nodes/2/config/pin", "GPIO5")), ESP32, ["/definition/nodes/2/config/pin"], "GPIO number"),
    ("two nodes share a pin", edited(BASE, ("set", "/definition/nodes/2/config/pin", 4)), ESP32, ["/definition/nodes/2/config/pin"], "already used by node 'n1'"),
    ("two drivers on one pin", edited(BASE, ("add", "/definition/nodes", {"id": "n5", "type": "pwm", "config": {"pin": 5}}),
                                      ("add", "/definition/connections", {"source": "n2", "target": "n5"})), ESP32, ["/definition/nodes/4/config/pin"], "already used by node 'n3'"),
    ("topic wildcard +", edited(BASE, ("set", "/definition/nodes/3/config/topic", "alerts/+")), ESP32, ["/definition/nodes/3/config/topic"], "wildcard '+'"),
    ("topic wildcard #", edited(BASE, ("set", "/definition/nodes/3/config/topic", "#")), ESP32, ["/definition/nodes/3/config/topic"], "wildcard '#'"),
    ("topic empty level", edited(BASE, ("set", "/definition/nodes/3/config/topic", "/alert")), ESP32, ["/definition/nodes/3/config/topic"], "empty level"),
    ("over the size budget", BASE, TINY, ["/definition/nodes"], "allows 300"),
    ("empty node list", edited(BASE, ("set", "/definition/nodes", []), ("set", "/definition/connections", [])), ESP32, ["/definition/nodes"], "empty flow"),
    ("empty body", {}, ESP32, [""], "empty flow"),
    ("body not an object", [1, 2], ESP32, [""], "JSON object"),
    ("both shapes", dict(BASE, steps=STEPS["steps"]), ESP32, ["/steps"], "not both"),
    ("config not an object", edited(BASE, ("set", "/definition/nodes/0/config", "pin=4")), ESP32, ["/definition/nodes/0/config"], "object of param values"),
    ("connections not a list", edited(BASE, ("set", "/definition/connections", {"n1": "n2"})), ESP32,
     ["/definition/connections", "/definition/nodes/1", "/definition/nodes/2", "/definition/nodes/3"], "list"),
    ("on_failure unknown", edited(BASE, ("set", "/definition/nodes/2/on_failure", "retry")), ESP32, ["/definition/nodes/2/on_failure"], "'stop' or 'continue'"),
    ("node retries too many", edited(BASE, ("set", "/definition/nodes/2/retries", 99)), ESP32, ["/definition/nodes/2/retries"], "between 0 and 5"),
    ("x not a number", edited(BASE, ("set", "/definition/nodes/0/x", "left")), ESP32, ["/definition/nodes/0/x"], "number"),
    ("step unknown node", edited(STEPS, ("set", "/steps/1/node", "toggle-feat")), ESP32, ["/steps/1/node"], "did you mean 'toggle_feature'"),
    ("step bad param", edited(STEPS, ("set", "/steps/2/params/level", "loud")), ESP32, ["/steps/2/params/level"], "'warning'"),
    ("step missing param", edited(STEPS, ("set", "/steps/1/params", {})), ESP32, ["/steps/1/params/name"], "missing required"),
    ("empty steps", {"steps": []}, ESP32, ["/steps"], "empty flow"),
    ("too many steps", {"steps": [{"node": "clear_cache"}] * 65}, ESP32, ["/steps"], "at most 64"),
    ("node id too long", edited(STEPS, ("set", "/steps/0/id", "x" * 33)), ESP32, ["/steps/0/id"], "at most 32"),
    ("switch gt on text", edited(BASE, ("set", "/definition/nodes/1/config/value", "hot")), ESP32, ["/definition/nodes/1/config/value"], "compares numbers"),
    ("switch gt on a text variable", edited(BASE, ("set", "/definition/variables/0/type", "string")), ESP32, ["/definition/nodes/1/config/value"], "compares numbers"),
    ("switch between reversed", edited(BASE, ("set", "/definition/nodes/1/config/op", "between"), ("set", "/definition/nodes/1/config/value2", 10)),
     ESP32, ["/definition/nodes/1/config/value2"], "value2 >= value"),
    ("change round places", edited(BASE, ("set", "/definition/nodes/3/type", "change"), ("set", "/definition/nodes/3/config", {"action": "round", "value": 9})),
     ESP32, ["/definition/nodes/3/config/value"], "0..6"),
    ("change rename without to", edited(BASE, ("set", "/definition/nodes/3/type", "change"), ("set", "/definition/nodes/3/config", {"action": "rename"})),
     ESP32, ["/definition/nodes/3/config/to"], "new field name"),
]


@pytest.mark.parametrize("body,board,pointers,word", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_definition_names_the_exact_pointer(body, board, pointers, word):
    problems = validate_flow(body, board)
    assert [p.pointer for p in problems] == pointers, [str(p) for p in problems]
    assert word in problems[0].message, problems[0].message


def test_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_the_base_flows_are_valid():
    assert validate_flow(BASE, ESP32) == []
    assert validate_flow(BASE, PICO) == []
    assert validate_flow(STEPS, ESP32) == []


def test_every_problem_comes_back_at_once():
    body = edited(BASE,
                  ("set", "/definition/nodes/0/config/pin", 6),
                  ("set", "/definition/nodes/1/type", "swich"),
                  ("set", "/definition/nodes/3/config/topic", "a/#"),
                  ("add", "/definition/connections", {"source": "n3", "target": "n9"}))
    pointers = [p.pointer for p in validate_flow(body, ESP32)]
    assert pointers == ["/definition/nodes/0/config/pin", "/definition/nodes/1/type",
                        "/definition/nodes/3/config/topic", "/definition/connections/3/target"]


def test_pointer_escapes_keys_with_slash_and_tilde():
    body = edited(BASE, ("set", "/definition/nodes/0/config/a~b", 1))
    body["definition"]["nodes"][0]["config"]["c/d"] = 2
    pointers = [p.pointer for p in validate_flow(body, ESP32)]
    assert pointers == ["/definition/nodes/0/config/a~0b", "/definition/nodes/0/config/c~1d"]


@pytest.mark.parametrize("edit", [
    ("set", "/definition/nodes/2/type", "gpio-out"),  # '-' for '_'
    ("set", "/definition/nodes/1/config/property", "$$price"),  # a literal '$'
    ("set", "/definition/nodes/0/config/every", "2s"),
    ("set", "/definition/nodes/0/config/every", "1d"),  # the largest: 86,400,000 ms
    ("set", "/definition/nodes/0/config/every", 2000.0),
    ("set", "/definition/variables/0/value", 30.5),
    ("set", "/definition/nodes/2/on_failure", "continue"),
])
def test_accepted_variants(edit):
    assert validate_flow(edited(BASE, edit), ESP32) == []

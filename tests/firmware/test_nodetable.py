"""The compiled-in node table and its catalog dump, under MicroPython,
checked against CPython's canonical JSON and docs/node-catalog.md."""

import hashlib
import json

import pytest

BODY = r'''
import sys
from fleetflow import canon
OUT["dump"] = nt.dump()
OUT["canon_text"] = canon.dumps(OUT["dump"])
OUT["sub_hash"] = nt.table_hash(["dht", "switch", "mqtt_out"])
OUT["sub_types"] = sorted(nt.dump(["dht", "switch", "mqtt_out"])["nodes"])
OUT["loaded_after_dump"] = sorted(k for k in sys.modules if k.startswith("fleetflow.nodes.") or k == "fleetflow.nodedump")
t = nt.load_table(["switch", "set-log-level", "switch"])
OUT["table"] = [list(t.types), t.get("dht") is None, t.get("set_log_level").TYPE, "switch" in t]
try:
    nt.load_table(["warp_drive"])
except FFError as e:
    OUT["unknown"] = e.args[0]
OUT["canon"] = [canon.dumps({"b": [1, True, None], "a": "\u00e9\n\"\\", "c": {"z": 1, "y": "\U0001f600"}})]
try:
    canon.dumps({"x": 1.5})
except FFError as e:
    OUT["canon_float"] = e.args[0]
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_dump_has_the_catalog_format(out):
    d = out["dump"]
    assert d["format"] == 1 and len(d["nodes"]) == 18
    assert set(d["nodes"]) == {"dht", "gpio_in", "adc", "inject", "switch", "change", "deadband", "debounce",
                               "rate_limit", "counter", "delay", "gpio_out", "pwm", "mqtt_out", "log",
                               "set_log_level", "toggle_feature", "clear_cache"}
    for t, node in d["nodes"].items():
        assert node["kind"] in ("source", "logic", "sink", "maint"), t
        assert node["trigger"] in ("poll", "edge", "boot", None), t
        assert node["ports"] in (1, 2) and node["doc"], t
        assert ("emits" in node) == (node["kind"] == "source"), t
        for p in node["params"]:
            assert p["type"] in ("int", "num", "bool", "str", "enum", "pin", "topic", "ms", "any"), (t, p)
            assert ("default" in p) != p["required"], (t, p)
            assert (p["type"] == "enum") == ("choices" in p) and (p["type"] == "pin") == ("use" in p), (t, p)


def test_dht_entry_is_the_documented_example(out):
    assert out["dump"]["nodes"]["dht"] == {
        "kind": "source", "trigger": "poll", "ports": 1,
        "doc": "reads temperature and humidity; a failed read is retried, then reported as data",
        "emits": ["value", "temperature", "humidity"],
        "params": [
            {"name": "pin", "type": "pin", "use": "in", "required": True},
            {"name": "model", "type": "enum", "choices": ["dht22", "dht11"], "default": "dht22", "required": False},
            {"name": "every", "type": "ms", "min": 2000, "max": 86400000, "default": 5000, "required": False},
            {"name": "retries", "type": "int", "min": 0, "max": 5, "default": 2, "required": False},
        ],
    }


def test_seed_example_defaults(out):
    nodes = out["dump"]["nodes"]
    switch = {p["name"]: p for p in nodes["switch"]["params"]}
    assert (switch["property"]["default"], switch["op"]["default"], switch["value"]["default"]) == ("value", "gt", 0)
    mqtt = {p["name"]: p for p in nodes["mqtt_out"]["params"]}
    assert (mqtt["topic"]["default"], mqtt["qos"]["default"], mqtt["retain"]["default"]) == ("events", 0, False)
    assert nodes["switch"]["ports"] == 2


def test_canonical_bytes_and_hash_match_cpython(out):
    d = out["dump"]
    canonical = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert out["canon_text"] == canonical
    nodes = json.dumps(d["nodes"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert d["hash"] == hashlib.sha256(nodes.encode()).hexdigest()
    sub = {t: d["nodes"][t] for t in ("dht", "switch", "mqtt_out")}
    sub_text = json.dumps(sub, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert out["sub_hash"] == hashlib.sha256(sub_text.encode()).hexdigest()
    assert out["sub_types"] == ["dht", "mqtt_out", "switch"]


def test_canon_matches_cpython_escaping(out):
    obj = {"b": [1, True, None], "a": "\u00e9\n\"\\", "c": {"z": 1, "y": "\U0001f600"}}
    assert out["canon"] == [json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)]
    assert "float" in out["canon_float"]


def test_dump_leaves_no_node_module_loaded(out):
    assert out["loaded_after_dump"] == []


def test_table_loads_only_listed_nodes(out):
    types, no_dht, alias, has_switch = out["table"]
    assert types == ["set_log_level", "switch"] and no_dht and alias == "set_log_level" and has_switch
    assert "warp_drive" in out["unknown"]

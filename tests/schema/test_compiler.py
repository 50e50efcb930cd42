"""The compiler: canonical, deterministic programs in topological order, within the board's budget."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from shared_schema.boards import load_board
from shared_schema.compiler import CompileError, compile_program

from .test_validate_table import BASE, STEPS, edited

REPO = Path(__file__).resolve().parents[2]
UNIX = load_board("unix-sim")


def _shuffled(obj, rng):
    """The same JSON value with every object's keys in a random order."""
    if isinstance(obj, dict):
        items = list(obj.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(obj, list):
        return [_shuffled(v, rng) for v in obj]
    return obj


def test_same_input_same_bytes_whatever_the_key_order():
    first = compile_program(BASE, UNIX, "flow_abc", 3)
    rng = random.Random(7)
    for _ in range(20):
        again = compile_program(_shuffled(BASE, rng), UNIX, "flow_abc", 3)
        assert again.data == first.data
    assert first.sha256 == hashlib.sha256(first.data).hexdigest() and first.size == len(first.data)


def test_same_bytes_across_processes_and_hash_seeds():
    code = ("import json,sys; from shared_schema.compiler import compile_program;"
            "print(compile_program(json.loads(sys.argv[1]), 'unix-sim', 'f', 1).sha256)")
    digests = {subprocess.run([sys.executable, "-c", code, json.dumps(BASE)], cwd=REPO, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=str(seed)), check=True).stdout.strip() for seed in (1, 2, 3)}
    assert digests == {compile_program(BASE, UNIX, "f", 1).sha256}


def test_program_is_canonical_json_with_every_param():
    program = compile_program(BASE, UNIX, "flow_abc", 3)
    doc = json.loads(program.data)
    assert program.data == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert doc["f"] == 1 and doc["board"] == "unix-sim" and doc["vars"] == {"threshold": 30}
    dht = doc["nodes"][0]
    assert dht == {"id": "n1", "type": "dht", "params": {"pin": 4, "model": "dht22", "every": 5000, "retries": 2}}
    assert doc["nodes"][1]["params"]["value"] == "$threshold"  # resolved per run, on the device
    assert doc["edges"] == [[0, 0, 1], [1, 0, 2], [1, 1, 3]]


def test_nodes_come_in_topological_order_and_every_edge_goes_forward():
    body = copy.deepcopy(BASE)
    body["definition"]["nodes"].reverse()  # the definition's order is not the execution order
    doc = json.loads(compile_program(body, UNIX, "f", 1).data)
    assert [n["id"] for n in doc["nodes"]] == ["n1", "n2", "n4", "n3"]
    assert all(src < dst for src, _port, dst in doc["edges"])


def test_durations_retries_and_escapes_are_compiled():
    body = edited(BASE, ("set", "/definition/nodes/0/config/every", "2m"),
                  ("set", "/definition/nodes/2/on_failure", "continue"),
                  ("set", "/definition/nodes/2/retries", 2),
                  ("set", "/definition/nodes/2/backoff_ms", "20ms"),
                  ("set", "/definition/nodes/1/config/property", "$$price"))
    nodes = {n["id"]: n for n in json.loads(compile_program(body, UNIX, "f", 1).data)["nodes"]}
    assert nodes["n1"]["params"]["every"] == 120_000
    assert (nodes["n3"]["on_failure"], nodes["n3"]["retries"], nodes["n3"]["backoff_ms"]) == ("continue", 2, 20)
    assert nodes["n2"]["params"]["property"] == "$$price"
    assert "on_failure" not in nodes["n1"] and "retries" not in nodes["n1"]


def test_step_form_compiles_to_a_chain():
    doc = json.loads(compile_program(STEPS, UNIX, "maint", 1).data)
    assert [(n["id"], n["type"]) for n in doc["nodes"]] == [("s1", "clear_cache"), ("s2", "toggle_feature"), ("s3", "set_log_level")]
    assert doc["edges"] == [[0, 0, 1], [1, 0, 2]]


def test_size_budget_is_enforced_per_board():
    program = compile_program(BASE, UNIX, "f", 1)
    exact = UNIX.model_copy(update={"program_max_bytes": program.size})
    assert compile_program(BASE, exact, "f", 1).data == program.data
    smaller = UNIX.model_copy(update={"program_max_bytes": program.size - 1})
    with pytest.raises(CompileError) as err:
        compile_program(BASE, smaller, "f", 1)
    assert [p.pointer for p in err.value.problems] == ["/definition/nodes"]
    assert f"{program.size} bytes" in err.value.problems[0].message


def test_invalid_definition_raises_with_every_problem():
    body = edited(BASE, ("set", "/definition/nodes/0/config/pin", 6), ("set", "/definition/nodes/3/config/topic", "a/+"))
    with pytest.raises(CompileError) as err:
        compile_program(body, "esp32-devkitc", "f", 1)
    assert [p.pointer for p in err.value.problems] == ["/definition/nodes/0/config/pin", "/definition/nodes/3/config/topic"]


@pytest.mark.parametrize("flow_id,ver", [("", 1), ("f", -1), ("f", True)])
def test_bad_flow_id_or_version_is_refused(flow_id, ver):
    with pytest.raises(CompileError):
        compile_program(BASE, UNIX, flow_id, ver)

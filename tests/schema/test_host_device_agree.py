"""Property: whatever validate_flow accepts, the device's program loader accepts too.

Hypothesis draws flows of every node type in the catalog with param values
near and past each param's bounds, wrong types, variable references and
pins of every kind (usable, input-only, reserved, absent). The host keeps
the ones it calls valid, compiles them, and one MicroPython process loads
every program with the firmware's `load_program` on the unix-sim board
(which checks pins, params and the nodes' own rules). None may be refused:
a flow that validates must never be rejected by a device.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema.catalog import load_catalog
from shared_schema.compiler import compile_program
from shared_schema.validate import validate_flow

from .device_lines import BOARD, run_lines

pytestmark = pytest.mark.slow

NODES = load_catalog()["nodes"]
LOADER = r"""
try:
    load_program(line.strip(), table, board)
    print(json.dumps("ok"))
except FFError as e:
    print(json.dumps(str(e)))
line = None
gc.collect()
"""
VARS = [{"name": "num", "type": "number", "value": 2.5}, {"name": "int", "type": "integer", "value": "3"},
        {"name": "text", "type": "string", "value": "value"}, {"name": "flag", "type": "boolean", "value": "true"},
        {"name": "pin", "type": "integer", "value": 21}]


def values_for(spec: dict):
    """Values around a param's spec: inside, on and past the bounds, and of other types."""
    near = [spec.get("default"), spec.get("min"), spec.get("max")]
    if spec.get("min") is not None:
        near.append(spec["min"] - 1)
    if spec.get("max") is not None:
        near.append(spec["max"] + 1)
    near += list(spec.get("choices", []))
    if spec["type"] == "pin":
        near += [0, 4, 5, 6, 20, 21, 34, 36, 37, 40, "$pin"]
    others = [0, 1, -1, 2.5, 0.5, True, False, None, "", "x", "value", "a/b", "a/+", "2s", "$num", "$int", "$text", "$flag", "$$x", [], {}]
    near = st.sampled_from([v for v in near if v is not None or spec.get("default", 0) is None])
    return st.one_of(near, near, near, st.sampled_from(others))


@st.composite
def flows(draw):
    nodes, conns = [], []
    for kind in draw(st.lists(st.sampled_from(sorted(NODES)), min_size=1, max_size=4)):
        config = {}
        for spec in NODES[kind]["params"]:
            if spec["required"] or draw(st.booleans()):
                config[spec["name"]] = draw(values_for(spec))
        nid = f"n{len(nodes) + 1}"
        if nodes and NODES[kind]["kind"] != "source":
            src = draw(st.integers(0, len(nodes) - 1))
            port = draw(st.integers(0, NODES[nodes[src]["type"]]["ports"] - 1))
            conns.append({"source": nodes[src]["id"], "target": nid, "port": port})
        nodes.append({"id": nid, "type": kind, "config": config})
    return {"definition": {"nodes": nodes, "connections": conns, "variables": VARS}}


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(flows(), min_size=150, max_size=150))
def test_what_the_host_accepts_the_device_loads(mpy, batch):
    valid = [body for body in batch if not validate_flow(body, BOARD)]
    programs = [compile_program(body, BOARD, "agree", 1).text for body in valid]
    if not programs:
        return
    verdicts = run_lines(mpy, LOADER, programs)
    refused = [(json.dumps(body), reason) for body, reason in zip(valid, verdicts) if reason != "ok"]
    assert not refused, refused[:3]
    assert len(verdicts) == len(programs)

"""Execution overrides checked on the host: each bad override is named by its exact pointer."""

from __future__ import annotations

import pytest

from shared_schema.overrides import normalized, override_problems

from .seeds import seed

GRAPH = seed("001")
GRAPH["definition"]["nodes"][0]["config"]["pin"] = 4  # n1 dht, n2 switch gt $threshold, n3 mqtt_out
STEPS = seed("000")  # s1 clear_cache, s2 toggle_feature, s3 set_log_level

CASES = [
    # (case id, flow, overrides, expected pointers)
    ("nothing", GRAPH, {}, []),
    ("a variable that fits", GRAPH, {"vars": {"threshold": 25.5}}, []),
    ("a variable as text that coerces", GRAPH, {"vars": {"threshold": "25"}}, []),
    ("a param that fits", GRAPH, {"params": {"n2": {"op": "lt"}}}, []),
    ("a step param that fits", STEPS, {"params": {"s3": {"level": "error"}}}, []),
    ("a duration param as text", GRAPH, {"params": {"n1": {"every": "1m"}}}, []),
    ("undeclared variable", GRAPH, {"vars": {"treshold": 1}}, ["/overrides/vars/treshold"]),
    ("variable of the wrong type", GRAPH, {"vars": {"threshold": "warm"}}, ["/overrides/vars/threshold"]),
    ("no such node", GRAPH, {"params": {"n7": {"op": "lt"}}}, ["/overrides/params/n7"]),
    ("no such step", STEPS, {"params": {"s4": {"level": "error"}}}, ["/overrides/params/s4"]),
    ("a pin", GRAPH, {"params": {"n1": {"pin": 5}}}, ["/overrides/params/n1/pin"]),
    ("unknown param", GRAPH, {"params": {"n2": {"opp": "lt"}}}, ["/overrides/params/n2/opp"]),
    ("param out of bounds", GRAPH, {"params": {"n1": {"every": "1s"}}}, ["/overrides/params/n1/every"]),
    ("step param not a choice", STEPS, {"params": {"s3": {"level": "loud"}}}, ["/overrides/params/s3/level"]),
    ("topic wildcard", GRAPH, {"params": {"n3": {"topic": "a/+"}}}, ["/overrides/params/n3/topic"]),
    ("several at once", GRAPH, {"vars": {"x": 1}, "params": {"n9": {}, "n1": {"pin": 2}}},
     ["/overrides/vars/x", "/overrides/params/n9", "/overrides/params/n1/pin"]),
]


@pytest.mark.parametrize("flow,overrides,pointers", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_override_problems_name_the_exact_pointer(flow, overrides, pointers):
    problems = override_problems(flow, overrides, "esp32-devkitc")
    assert [p.pointer for p in problems] == pointers, [str(p) for p in problems]


def test_a_bad_variable_is_reported_once_not_again_where_it_is_used():
    problems = override_problems(GRAPH, {"vars": {"threshold": "warm"}}, "unix-sim")
    assert [(p.pointer, p.message) for p in problems] == [
        ("/overrides/vars/threshold", "variable 'threshold': 'warm' is not a number; write e.g. 30")]


def test_normalized_overrides_are_what_the_device_takes():
    got = normalized(GRAPH, {"vars": {"threshold": "25"}, "params": {"n2": {"op": "lt"}, "n1": {"every": "1m"}}},
                     "unix-sim")
    assert got == {"vars": {"threshold": 25}, "params": {"n2": {"op": "lt"}, "n1": {"every": 60_000}}}
    assert isinstance(got["vars"]["threshold"], int)  # the device checks types: "25" would be refused there
    got = normalized(STEPS, {"params": {"s3": {"level": "error"}}}, "unix-sim")
    assert got == {"vars": {}, "params": {"s3": {"level": "error"}}}


DEVICE = r"""
case = json.loads(line)
try:
    load_program(case["program"], table, board).cfgs_for(case["overrides"])
    print(json.dumps("ok"))
except FFError as e:
    print(json.dumps(str(e)))
"""


@pytest.mark.slow
def test_overrides_the_host_accepts_the_device_runs_and_unknown_names_both_refuse(mpy):
    import json

    from shared_schema.compiler import compile_program

    from .device_lines import BOARD as board, run_lines

    # The host is stricter than the device (it knows a switch `gt` compares
    # numbers); what both must refuse is what the program cannot name.
    both_refuse = {"undeclared variable", "no such node", "no such step", "a pin", "unknown param"}
    cases, expect_ok = [], []
    for name, flow, overrides, pointers in CASES:
        if pointers and name not in both_refuse:
            continue
        sent = normalized(flow, overrides, board) if not pointers else overrides
        cases.append({"program": compile_program(flow, board, "ov", 1).text, "overrides": sent})
        expect_ok.append(not pointers)
    verdicts = run_lines(mpy, DEVICE, [json.dumps(c) for c in cases])
    assert len(verdicts) == len(cases)
    for case, ok, verdict in zip(cases, expect_ok, verdicts):
        assert (verdict == "ok") is ok, (case["overrides"], verdict)

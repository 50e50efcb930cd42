"""Rehearsal's pure parts (cloud/engine/rehearsal.py), as tables."""

from __future__ import annotations

import json

import pytest

from cloud.engine import rehearsal as core

PROGRAM = json.dumps({"nodes": [
    {"id": "t", "type": "dht", "params": {"pin": 4}},
    {"id": "a", "type": "adc", "params": {"pin": 34}},
    {"id": "s", "type": "switch", "params": {}}]})


@pytest.mark.parametrize("strategy, targets, asked, default_on, expected", [
    ("canary", 5, None, True, True),
    ("rolling", 1, None, True, True),
    ("blue_green", 2, None, True, True),
    ("all_at_once", 1, None, True, False),   # one device, all at once: the user is watching it
    ("all_at_once", 2, None, True, True),
    ("canary", 5, False, True, False),       # asked off
    ("all_at_once", 1, True, True, True),    # asked on
    ("canary", 5, None, False, False),       # the cloud's default off
    ("canary", 5, True, False, True),
])
def test_who_rehearses(strategy, targets, asked, default_on, expected):
    assert core.wanted(strategy, targets, asked, default_on) is expected


@pytest.mark.parametrize("rows, expected", [
    ([], {}),
    ([("t", "{'temperature': 21.5, 'humidity': 40, 'value': 21.5}", None)],
     {"dht": {"4": {"script": [[21.5, 40]], "read_ms": 0}}}),
    ([("t", None, "OSError: [Errno 110] ETIMEDOUT"), ("t", None, "checksum error"),
      ("t", "{'temperature': 'garbage', 'humidity': 40}", None)],
     {"dht": {"4": {"script": ["timeout", "checksum", ["garbage", 40]], "read_ms": 0}}}),
    ([("a", "{'value': 12.3, 'raw': 1230, 'pin': 34}", None), ("a", "{'value': 1, 'raw': 9, 'pin': 34}", "boom")],
     {"adc": {"34": [1230]}}),                                  # an errored read is not replayed
    # cut at 60 characters by the device: the fields kept whole count
    ([("t", "{'humidity': 40.0, 'value': 'garbage', 'temperature': 'gar...", None)],
     {"dht": {"4": {"script": [["garbage", 40.0]], "read_ms": 0}}}),
    ([("t", "{'humidity': 40.0, 'val...", None)], {}),  # nothing usable left
    ([("s", "{'temperature': 99}", None), ("gone", "{'temperature': 1}", None)], {}),  # not an input node
])
def test_recorded_inputs(rows, expected):
    assert core.recorded_inputs(PROGRAM, rows) == expected


def _rec(*nodes, err=None):
    return {"err": err, "nodes": [{"id": i, "type": t, "out": o, "err": e} for i, t, o, e in nodes]}


BASE = core.summarize([_rec(("t", "dht", "{'temperature': 20}", None), ("s", "switch", "1", None)),
                       _rec(("t", "dht", "{'temperature': 30}", None), ("s", "switch", "2", None))])


@pytest.mark.parametrize("candidate, memory, kinds", [
    ([_rec(("t", "dht", "{'temperature': 20}", None), ("s", "switch", "1", None)),
      _rec(("t", "dht", "{'temperature': 30}", None), ("s", "switch", "2", None))], None, []),
    ([_rec(("t", "dht", "{'temperature': 20.1}", None))], None, []),           # within 1 %
    ([_rec(("t", "dht", "{'temperature': 25}", None))], None, ["output_diff"]),
    ([_rec(("t", "dht", "{'temperature': 20}", None), ("s", "switch", None, "TypeError: x"), err="s: TypeError: x")],
     None, ["new_error"]),
    ([_rec(("t", "dht", "{'temperature': 20}", None), ("n", "log", None, "KeyError: k"))], None, ["new_error"]),
    ([_rec(("t", "dht", "{'temperature': 20}", None), err="time budget: run passed 100 ms")], None, ["budget"]),
    ([_rec(err="memory budget: 24 fan-in runs")], None, ["budget"]),
    ([], "MemoryError: memory allocation failed", ["memory"]),
])
def test_compare_finds(candidate, memory, kinds):
    findings = core.compare(BASE, core.summarize(candidate), memory)
    assert sorted(f["kind"] for f in findings) == sorted(kinds)


@pytest.mark.parametrize("heap, kinds", [
    ((32_768, None, 65_536), []),                 # at the share (half of 64 KB): fine
    ((32_769, None, 65_536), ["heap"]),           # above it, nothing runs there now
    ((40_000, 36_000, 65_536), ["heap"]),         # above it and above the version running now
    ((40_000, 40_000, 65_536), []),               # no worse than what runs now
    ((None, None, 65_536), []),                   # the twin never got to measure
])
def test_heap_above_the_boards_flow_share(heap, kinds):
    findings = core.compare(BASE, core.summarize([]), None, heap=heap)
    assert [f["kind"] for f in findings] == kinds
    if kinds:
        assert "32768" in findings[0]["detail"] and core.verdict(findings)[0] == "failed"


def test_a_node_failing_in_both_is_not_new_and_no_baseline_still_judges():
    failing = [_rec(("s", "switch", None, "TypeError: x"))]
    assert core.compare(core.summarize(failing), core.summarize(failing)) == []
    [f] = core.compare(None, core.summarize(failing))
    assert (f["kind"], f["node"], f["detail"], f["count"]) == ("new_error", "s", "TypeError: x", 1)


@pytest.mark.parametrize("findings, expected", [
    ([], ("passed", "")),
    ([{"kind": "output_diff", "node": "t", "detail": "1 of 2 outputs differ"}], ("passed", "")),
    ([{"kind": "output_diff", "node": "t", "detail": "d"}, {"kind": "new_error", "node": "s", "detail": "TypeError: x"}],
     ("failed", "rehearsal: new error: s: TypeError: x")),
    ([{"kind": "memory", "node": None, "detail": "MemoryError: m"}], ("failed", "rehearsal: memory: MemoryError: m")),
])
def test_verdict(findings, expected):
    assert core.verdict(findings) == expected

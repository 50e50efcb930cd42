"""The A/B slot store's state machine, run under MicroPython (table-driven)."""

from __future__ import annotations

import pytest

from agent_helpers import run_mpy

RESULTS = run_mpy("slots_table.py")


@pytest.mark.parametrize("result", RESULTS, ids=[r["case"] for r in RESULTS])
def test_slot_transition(result):
    assert result["input_unchanged"], "a transition mutated its input state"
    assert result["got"] == result["want"]


def test_table_is_not_empty():
    assert len(RESULTS) >= 15

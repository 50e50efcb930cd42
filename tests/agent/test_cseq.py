"""A signed command's replay window (fleetflow.cmdsig.fresh), run under MicroPython (table-driven)."""

from __future__ import annotations

import pytest

from agent_helpers import run_mpy

RESULTS = run_mpy("cseq_table.py")


@pytest.mark.parametrize("result", RESULTS, ids=[r["case"] for r in RESULTS])
def test_replay_window(result):
    assert result["input_unchanged"], "fresh() changed the window it was given"
    assert result["got"] == result["want"]


def test_table_is_not_empty():
    assert len(RESULTS) >= 12

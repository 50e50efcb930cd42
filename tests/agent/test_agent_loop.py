"""The device loop (Agent.safe_step) under MicroPython: nothing but a deliberate exit escapes it."""

from __future__ import annotations

import pytest

from agent_helpers import run_mpy

RESULTS = run_mpy("agent_loop.py", heap="256k")  # compiling agent.py from source needs more than 64k


@pytest.mark.parametrize("result", RESULTS, ids=[r["case"] for r in RESULTS])
def test_agent_loop_case(result):
    assert result["ok"], result


def test_every_case_ran():
    assert len(RESULTS) == 10

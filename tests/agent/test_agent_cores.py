"""Pure cores of the agent (health gate, chunk transfer, block-device faults), table-driven under MicroPython."""

from __future__ import annotations

import pytest

from agent_helpers import ROOT, run_mpy

(ROOT / "var").mkdir(exist_ok=True)
RESULTS = run_mpy("agent_cores.py")


@pytest.mark.parametrize("result", RESULTS, ids=[r["case"] for r in RESULTS])
def test_agent_core_case(result):
    assert result["ok"], result


def test_every_group_ran():
    groups = {r["case"].split(":")[0] for r in RESULTS}
    assert groups == {"health", "transfer", "blockdev"}
    assert len(RESULTS) >= 17

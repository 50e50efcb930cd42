"""The product documents' flow examples parse as drafts, verbatim, and validate once pins are named."""

from __future__ import annotations

import copy

import pytest

from shared_schema.boards import board_names
from shared_schema.models import parse_draft
from shared_schema.validate import validate_flow
from .seeds import SEEDS_DIR, embedded_json_texts, fixture_text, seed


@pytest.mark.parametrize("prefix", ["000", "001"])
def test_fixtures_are_the_seed_examples_verbatim(prefix):
    docs = sorted(SEEDS_DIR.glob(f"{prefix}_*.txt"))
    if not docs:
        pytest.skip(f"the seed documents are not next to this clone ({SEEDS_DIR})")
    assert fixture_text(prefix) in embedded_json_texts(docs[0].read_text())


def test_step_form_seed_parses_as_a_draft():
    flow = parse_draft(seed("000"))
    assert flow.form == "steps"
    assert [s.node for s in flow.steps] == ["clear_cache", "toggle_feature", "set_log_level"]
    assert flow.steps[1].params == {"name": "debug-overlay", "enabled": False}


def test_graph_form_seed_parses_as_a_draft_with_coerced_variable():
    flow = parse_draft(seed("001"))
    assert flow.form == "graph"
    assert [n.id for n in flow.definition.nodes] == ["n1", "n2", "n3"]
    assert [(c.source, c.target, c.port) for c in flow.definition.connections] == [("n1", "n2", 0), ("n2", "n3", 0)]
    var = flow.definition.variables[0]
    assert (var.name, var.type, var.value) == ("threshold", "number", 30)
    assert flow.tags == ["temperature", "alerts"]


@pytest.mark.parametrize("board", board_names())
def test_step_form_seed_is_valid_as_it_stands(board):
    assert validate_flow(seed("000"), board) == []


@pytest.mark.parametrize("board,pin", [("esp32-devkitc", 4), ("rp2-pico-w", 15), ("unix-sim", 4)])
def test_graph_form_seed_validates_once_the_sensor_pin_is_named(board, pin):
    body = seed("001")
    assert [p.pointer for p in validate_flow(body, board)] == ["/definition/nodes/0/config/pin"]
    named = copy.deepcopy(body)
    named["definition"]["nodes"][0]["config"]["pin"] = pin
    assert validate_flow(named, board) == []

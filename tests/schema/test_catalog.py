"""catalog.json is what the firmware's node table says, and hashes agree on both sides."""

from __future__ import annotations

import json

import pytest

from shared_schema import catalog as cat
from shared_schema.boards import board_names, load_board
from tools.cli import main


@pytest.fixture(scope="module")
def generated():
    return cat.generate_catalog()


def test_catalog_json_has_not_drifted_from_the_firmware(generated):
    # Fails when a node module changes and catalog.json was not regenerated:
    # run `fleetflow catalog --write` and commit the result.
    assert cat.CATALOG_PATH.read_text() == cat.catalog_text(generated)


def test_catalog_check_command(capsys):
    assert main(["catalog", "--check"]) == 0
    assert "matches the firmware" in capsys.readouterr().out


def test_catalog_format(generated):
    assert generated["format"] == 1 and generated["hash"] == cat.nodes_hash(generated["nodes"])
    for node_type, spec in generated["nodes"].items():
        assert spec["kind"] in ("source", "logic", "sink", "maint"), node_type
        assert spec["trigger"] in ("poll", "edge", "boot", None), node_type
        assert spec["ports"] >= 1
        for p in spec["params"]:
            assert p["type"] in ("int", "num", "bool", "str", "enum", "pin", "topic", "ms", "any"), (node_type, p)
            assert ("default" in p) != p["required"], (node_type, p)
            if p["type"] == "enum":
                assert p["choices"]
            if p["type"] == "pin":
                assert p["use"] in ("in", "out", "adc", "pwm")


@pytest.mark.parametrize("board", board_names())
def test_board_hash_equals_what_the_device_computes(mpy, board):
    spec = load_board(board)
    code = ("import json, sys\nfrom fleetflow.nodetable import table_hash\n"
            f"print(json.dumps(table_hash({json.dumps(spec.nodes)})))")
    # under the board's own heap: the device computes it at every connect
    assert mpy.json(code, board=board) == cat.board_hash(spec)


def test_every_board_node_is_in_the_catalog():
    nodes = cat.load_catalog()["nodes"]
    for board in board_names():
        spec = load_board(board)
        assert set(spec.nodes) <= set(nodes), board
        assert cat.board_types(spec) == sorted(spec.nodes)

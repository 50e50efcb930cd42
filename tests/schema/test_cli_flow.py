"""`fleetflow flow validate|compile|diff` on the seeds' examples and broken copies of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cli import main

from .seeds import fixture_text, seed

REPO = Path(__file__).resolve().parents[2]


def _named(tmp_path: Path) -> Path:
    body = seed("001")
    body["definition"]["nodes"][0]["config"]["pin"] = 4
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(body, indent=2))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_valid_step_seed_exits_0(tmp_path, capsys):
    path = tmp_path / "maint.json"
    path.write_text(fixture_text("000"))
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "esp32-devkitc")
    assert status == 0 and "valid for board esp32-devkitc" in out


def test_graph_seed_as_published_lacks_only_the_pin(tmp_path, capsys):
    path = tmp_path / "alert.json"
    path.write_text(fixture_text("001"))
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "rp2-pico-w", "--json")
    assert status == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["pointer"] for line in lines] == ["/definition/nodes/0/config/pin"]
    assert "missing required param 'pin'" in lines[0]["message"]


def test_broken_copy_lists_every_problem(tmp_path, capsys):
    body = json.loads(_named(tmp_path).read_text())
    body["definition"]["nodes"][0]["config"]["pin"] = 6
    body["definition"]["nodes"][2]["config"]["topic"] = "alerts/#"
    body["definition"]["connections"].append({"source": "n3", "target": "n1"})
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(body))
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "esp32-devkitc", "--json")
    assert status == 1
    assert [json.loads(line)["pointer"] for line in out.splitlines()] == [
        "/definition/nodes/0/config/pin", "/definition/nodes/2/config/topic", "/definition/connections/2/target"]
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "esp32-devkitc")
    assert status == 1 and "3 problems" in out and "/definition/nodes/0/config/pin: GPIO 6 is reserved" in out


@pytest.mark.parametrize("text,line,column", [
    ('{"definition": {"nodes": [\n  {"id": "n1", "config": {"pin": NaN}}]}}', 2, 34),
    ('{"steps": [\n {"node": "log"},\n]}', 3, 1),
    ('{"steps": [{"node": "log", "params": {"x": -Infinity}}]}', 1, 44),
    ('{"name": "NaN in a string is fine", "steps": [1, }', 1, 50),
    ("", 1, 1),
])
def test_malformed_json_is_an_error_with_line_and_column(tmp_path, capsys, text, line, column):
    path = tmp_path / "bad.json"
    path.write_text(text)
    status, out, err = run(capsys, "flow", "validate", str(path), "--board", "unix-sim")
    assert status == 1 and f"bad.json:{line}:{column}: malformed JSON" in err and "Traceback" not in err + out
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "unix-sim", "--json")
    obj = json.loads(out)
    assert status == 1 and (obj["line"], obj["column"]) == (line, column) and obj["pointer"] == ""


def test_unknown_board_and_missing_file_are_usage_errors(tmp_path, capsys):
    status, _, err = run(capsys, "flow", "validate", str(_named(tmp_path)), "--board", "esp8266")
    assert status == 2 and "unknown board 'esp8266'" in err
    status, _, err = run(capsys, "flow", "validate", str(tmp_path / "nope.json"), "--board", "unix-sim")
    assert status == 1 and "cannot read" in err


def test_compile_prints_the_canonical_program(tmp_path, capsys):
    status, out, err = run(capsys, "flow", "compile", str(_named(tmp_path)), "--board", "unix-sim", "--flow-id", "f1", "--ver", "2")
    program = json.loads(out)
    assert status == 0 and program["flow"] == "f1" and program["ver"] == 2 and "sha256" in err
    assert out.strip() == json.dumps(program, sort_keys=True, separators=(",", ":"))


def test_diff_reports_changed_fields(tmp_path, capsys):
    old = _named(tmp_path)
    body = json.loads(old.read_text())
    body["definition"]["nodes"][1]["config"]["value"] = 25
    new = tmp_path / "new.json"
    new.write_text(json.dumps(body))
    status, out, _ = run(capsys, "flow", "diff", str(old), str(new))
    assert status == 1 and "~ node n2 config.value: null -> 25" in out
    status, out, _ = run(capsys, "flow", "diff", str(old), str(old), "--json")
    assert status == 0 and json.loads(out)["same"] is True


def test_the_installed_command_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "flow", "validate", str(_named(tmp_path)), "--board", "esp32-devkitc", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr


def test_a_problem_with_the_whole_body_is_not_shown_as_the_pointer_slash(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text("{}")
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "unix-sim")
    assert status == 1 and "  (the whole flow): empty flow" in out and "  /:" not in out
    status, out, _ = run(capsys, "flow", "validate", str(path), "--board", "unix-sim", "--json")
    assert json.loads(out)["pointer"] == ""  # RFC 6901: "" is the whole document

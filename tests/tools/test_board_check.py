"""`fleetflow board-check`: the real mpremote runs the check on a MicroPython
unix-port REPL behind a pseudo-terminal (as the flash test does), and the
verdicts are a table test of tools.device.board_check.judge."""

from __future__ import annotations

import copy
import json

import pytest

from shared_schema.boards import load_board
from tools.device import board_check
from tools import cli
from tools.device.board_check import judge

def _verdicts(doc) -> dict:
    return {c["check"]: (c["verdict"], c["result"]) for c in doc["checks"]}


def test_board_check_on_the_unix_port_reports_what_it_lacks_without_failing(board, tmp_path, capsys):
    report = tmp_path / "report.json"
    rc = cli.main(["board-check", "--board", "unix-sim", "--port", board.port, "--out-pin", "5",
                   "--report", str(report), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert json.loads(report.read_text()) == doc and doc["ok"] is True
    got = _verdicts(doc)
    assert got["micropython"][0] == "ok" and got["micropython"][1].startswith("1.29.")
    assert got["mpy_abi"] == ("ok", ".mpy v6, arch x64")
    assert got["ssl"][0] == "ok" and "Mbed TLS" in got["ssl"][1]
    assert got["wifi"][0] == "missing" and "network" in got["wifi"][1]
    assert got["filesystem"][0] == "ok" and got["filesystem"][1].startswith("VfsPosix")
    # the firmware's real HAL ran on the board and met a port without machine.Pin
    assert got["hal_out"] == ("missing", "pin 5: ImportError: can't import name Pin")
    assert got["hal_adc"][0] == "missing" and got["hal_pwm"][0] == "skipped" and got["hal_dht"][0] == "skipped"
    heap = doc["report"]["heap"]
    assert 0 < heap["largest_block"] <= heap["free"] <= 256 * 1024  # the pty board runs at -X heapsize=256k

    rc = cli.main(["board-check", "--board", "unix-sim", "--port", board.port])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("CHECK") and "unix-sim on " in out and "can run fleetflow" in out


def test_the_wrong_board_file_fails_on_the_mpy_arch(board, capsys):
    rc = cli.main(["board-check", "--board", "esp32-devkitc", "--port", board.port, "--resume", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1 and doc["ok"] is False
    verdict, result = _verdicts(doc)["mpy_abi"]
    assert verdict == "fail" and "arch x64" in result


def test_a_port_with_no_board_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["board-check", "--board", "esp32-devkitc", "--port", str(tmp_path / "nothing"), "--timeout", "20"])
    err = capsys.readouterr().err
    assert rc == 2 and "mpremote could not run the check" in err and len(err.splitlines()) <= 3


ESP32 = load_board("esp32-devkitc")
HEALTHY = {  # what a DevKitC with fleetflow's boot.py and Wi-Fi up would report
    "micropython": {"version": "1.29.0", "platform": "esp32", "machine": "ESP32 module", "mpy": 6 | (10 << 10)},
    "wifi": {"active": True, "connected": True, "rssi": -61},
    "heap": {"free": 110_000, "used": 20_000, "largest_block": 90_000},
    "fs": {"block": 4096, "total": 2_097_152, "free": 1_900_000, "type": "VfsLfs2"},
    "romfs": {"error": "no vfs.rom_ioctl"},
    "ssl": {"mbedtls": "Mbed TLS 3.6.0", "context": True},
    "hal": {"out": {"pin": 2, "read_back": [1, 0]}, "adc": {"pin": 32, "read_u16": 1234},
            "pwm": {"skipped": True}, "dht": {"pin": 4, "temperature": 21.5, "humidity": 40.0}},
}


def _with(path: str, value):
    report = copy.deepcopy(HEALTHY)
    *parents, last = path.split(".")
    node = report
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return report


@pytest.mark.parametrize("path,value,check,verdict,advice", [
    ("micropython.mpy", 5 | (10 << 10), "mpy_abi", "fail", "flash a MicroPython"),
    ("micropython.mpy", 6 | (4 << 10), "mpy_abi", "fail", "builds for xtensawin"),
    ("wifi.connected", False, "wifi", "warn", "before Wi-Fi"),
    ("heap.free", 60_000, "heap_free", "warn", "budget is 64.0 KiB"),
    ("heap.largest_block", 8_000, "largest_block", "warn", "fragmented"),
    ("fs.type", "VfsFat", "filesystem", "warn", "LittleFS"),
    ("fs.free", 100_000, "filesystem", "warn", "free wanted"),
    ("ssl", {"error": "ImportError: no module named 'ssl'"}, "ssl", "fail", "MQTT over TLS"),
    ("hal.out", {"pin": 34, "read_back": [0, 0]}, "hal_out", "fail", "input-only"),
    ("hal.dht", {"pin": 4, "error": "OSError: [Errno 116] ETIMEDOUT"}, "hal_dht", "fail", "wiring of pin 4"),
    ("hal.adc", {"pin": 32, "error": "ImportError: can't import name ADC"}, "hal_adc", "missing", "machine I/O"),
])
def test_verdicts(path, value, check, verdict, advice):
    rows = {r.check: r for r in judge(HEALTHY, ESP32)}
    assert all(r.verdict in ("ok", "missing", "skipped") for r in rows.values()), rows
    row = {r.check: r for r in judge(_with(path, value), ESP32)}[check]
    assert row.verdict == verdict and advice in row.advice, row
    assert board_check.failed(judge(_with(path, value), ESP32)) == (verdict == "fail")


def test_the_probe_carries_the_firmwares_real_hal_and_the_pins_asked_for():
    pins = board_check.default_pins(ESP32, out=2)
    assert pins == {"out": 2, "pwm": None, "dht": None, "dht_model": "dht22", "adc": 32}
    script = board_check.probe_script(ESP32, pins)
    assert repr(board_check.HAL_SOURCE.read_text()) in script and "PINS = " + repr(pins) in script

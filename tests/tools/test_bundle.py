"""The board bundle: mpy-cross per architecture, only the board's nodes, provisioning, budget."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tools.device import bundle as bundle_mod
from tools.device import device_config
from tools.sim.ptyboard import micropython_exe

PROVISIONING = {"device_id": "dev-1", "mqtt_host": "10.0.0.2", "mqtt_port": 1884, "mqtt_password": "pw",
                "wifi_ssid": "home", "wifi_password": "wpw", "key": "AB" * 32}

# MicroPython's .mpy header byte 2 holds the native architecture in its upper 6 bits.
ARCH_CODE = {"xtensawin": 10, "armv6m": 4}


def _mpy_arch(path) -> int:
    return path.read_bytes()[2] >> 2


@pytest.mark.parametrize("board", ["esp32-devkitc", "rp2-pico-w", "unix-sim"])
def test_real_firmware_bundle_fits_the_flash_budget(tmp_path, board):
    b = bundle_mod.build_bundle(board, tmp_path / board, PROVISIONING)
    spec = json.loads((tmp_path / board / "board.json").read_text())
    assert spec["name"] == board
    assert b.code_bytes > 0 and b.within_budget, b.summary()
    mpys = [f.path for f in b.files if f.path.endswith(".mpy")]
    assert "lib/fleetflow/__init__.mpy" in mpys
    assert not any(f.path.endswith(".py") and f.path.startswith("lib/") for f in b.files)
    assert ("lib/umqtt/simple.mpy" in mpys) == (board == "unix-sim")
    cfg = json.loads((tmp_path / board / "config.json").read_text())
    assert cfg["device_id"] == "dev-1" and cfg["board"] == board and cfg["key"] == "ab" * 32
    assert cfg["mqtt"] == {"host": "10.0.0.2", "port": 1884, "user": "dev-1", "password": "pw"}
    assert cfg["wifi"] == {"ssid": "home", "password": "wpw"}


def _fake_tree(tmp_path, native=False):
    fw = tmp_path / "fw"
    (fw / "fleetflow" / "nodes").mkdir(parents=True)
    (fw / "main.py").write_text("# the entry point\nimport fleetflow  # kept\n    # indented comment\nX = '#'\n")
    (fw / "fleetflow" / "__init__.py").write_text("VERSION = '0'\n")
    if native:  # a native-code module: only a board architecture can compile it
        (fw / "fleetflow" / "fast.py").write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    for name in ("__init__", "dht", "switch", "_shared"):
        (fw / "fleetflow" / "nodes" / f"{name}.py").write_text(f"NAME = {name!r}\n")
    (fw / "fleetflow" / "hal").mkdir()
    for name in ("__init__", "real", "sim", "sim_dht"):
        (fw / "fleetflow" / "hal" / f"{name}.py").write_text(f"NAME = {name!r}\n")
    boards = tmp_path / "boards"
    boards.mkdir()
    for name, port in (("tiny-esp", "esp32"), ("tiny-rp2", "rp2"), ("tiny-sim", "unix")):
        (boards / f"{name}.json").write_text(json.dumps({"name": name, "port": port, "nodes": ["dht"],
                                                         "flash": {"bundle_max_bytes": 4096}}))
    (boards / "full.json").write_text(json.dumps({"name": "full", "port": "unix", "nodes": ["dht", "switch"]}))
    return fw, boards


@pytest.mark.parametrize("board, march", [("tiny-esp", "xtensawin"), ("tiny-rp2", "armv6m"), ("tiny-sim", None)])
def test_bundle_compiles_for_the_board_architecture_with_only_its_nodes(tmp_path, board, march):
    fw, boards = _fake_tree(tmp_path, native=bool(march))
    b = bundle_mod.build_bundle(board, tmp_path / "out", firmware_dir=fw, boards_dir=boards)
    paths = {f.path for f in b.files}
    assert {"main.py", "lib/fleetflow/nodes/dht.mpy", "lib/fleetflow/nodes/_shared.mpy",
            "lib/fleetflow/nodes/__init__.mpy"} <= paths
    assert "lib/fleetflow/nodes/switch.mpy" not in paths  # not compiled into this board
    # the entry point is source the board compiles at boot: comment lines dropped, code kept
    assert (tmp_path / "out" / "main.py").read_text() == "import fleetflow  # kept\nX = '#'\n"
    # the code again as a ROMFS image (tools/device/romfs.py), for boards that run it from flash
    assert (tmp_path / "out" / "rom.img").read_bytes()[:3] == b"\xd2\xcd\x31"
    # one hal backend: the simulated one for the unix port, the real one for boards
    assert "lib/fleetflow/hal/__init__.mpy" in paths
    assert ("lib/fleetflow/hal/sim.mpy" in paths, "lib/fleetflow/hal/sim_dht.mpy" in paths,
            "lib/fleetflow/hal/real.mpy" in paths) == ((True, True, False) if march is None else (False, False, True))
    assert "config.json" not in paths  # no provisioning given
    assert b.budget_bytes == 4096 and b.march == march
    native = tmp_path / "out" / "lib" / "fleetflow" / "fast.mpy"
    if march:
        assert _mpy_arch(native) == ARCH_CODE[march]
    else:
        # Plain bytecode for the unix port; it loads and runs under real MicroPython.
        out = subprocess.run([micropython_exe(), "-c", "import sys; sys.path.insert(0, 'lib'); "
                              "import fleetflow.nodes.dht as d; print(d.NAME)"],
                             cwd=tmp_path / "out", capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "dht", out.stderr


def test_the_device_config_with_its_passwords_is_owner_only(tmp_path):
    # config.json holds the device's broker password and HMAC key (issue 10)
    fw, boards = _fake_tree(tmp_path)
    old = os.umask(0o002)  # what would leave it 0664
    try:
        bundle_mod.build_bundle("tiny-sim", tmp_path / "out", PROVISIONING, firmware_dir=fw, boards_dir=boards)
    finally:
        os.umask(old)
    cfg = tmp_path / "out" / "config.json"
    assert oct(stat.S_IMODE(cfg.stat().st_mode)) == "0o600"
    assert json.loads(cfg.read_text())["mqtt"]["password"] == "pw"


def test_bundle_over_budget_is_reported(tmp_path):
    fw, boards = _fake_tree(tmp_path)
    (fw / "fleetflow" / "big.py").write_text("DATA = " + repr("x" * 6000) + "\n")
    b = bundle_mod.build_bundle("tiny-sim", tmp_path / "out", firmware_dir=fw, boards_dir=boards)
    assert b.code_bytes > 4096 and not b.within_budget and b.summary()["within_budget"] is False


def test_bundle_errors_name_the_problem(tmp_path):
    fw, boards = _fake_tree(tmp_path)
    with pytest.raises(bundle_mod.BundleError, match="unknown board 'nope'"):
        bundle_mod.build_bundle("nope", tmp_path / "o", firmware_dir=fw, boards_dir=boards)
    (fw / "fleetflow" / "broken.py").write_text("def f(:\n")
    with pytest.raises(bundle_mod.BundleError, match="mpy-cross failed on fleetflow/broken.py"):
        bundle_mod.build_bundle("tiny-sim", tmp_path / "o", firmware_dir=fw, boards_dir=boards)


@pytest.mark.parametrize("change, message", [
    ({"device_id": None}, "needs device_id"),
    ({"device_id": "a/b"}, "device_id 'a/b'"),
    ({"key": "xyz"}, "key must be hex"),
    ({"mqtt_port": "abc"}, "mqtt_port must be an integer"),
    ({"colour": "red"}, "unknown provisioning fields: colour"),
])
def test_provisioning_is_checked_before_it_reaches_a_board(change, message):
    prov = {**PROVISIONING, **change}
    prov = {k: v for k, v in prov.items() if v is not None}
    with pytest.raises(device_config.ConfigError, match=message):
        device_config.render(prov)

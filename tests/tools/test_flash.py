"""`fleetflow flash` end to end: the real mpremote flashes a MicroPython unix-port
REPL behind a pseudo-terminal, and a fresh MicroPython boots from what landed."""

from __future__ import annotations

import base64
import json
import os
import ssl
import shutil
import subprocess
import time

import pytest

from tools import cli
from tools.sim.ptyboard import micropython_exe
from tools.infra.tls import ensure_tls

KEY = "5a" * 32

needs_socat = pytest.mark.skipif(not shutil.which("socat"),
                                 reason="socat is not installed: `make system` (Debian package socat) installs it")


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@needs_socat
def test_flash_copies_the_bundle_intact_and_clears_stale_modules(board, tmp_path, capsys):
    stale = board.root / "lib" / "fleetflow" / "nodes" / "gone.mpy"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    keep = board.root / "slot_a.bin"  # device data outside the firmware survives a reflash
    keep.write_bytes(b"flow")
    ca = ensure_tls(tmp_path / "tls")
    rc = cli.main(["flash", "--board", "unix-sim", "--port", board.port, "--device-id", "bench-1",
                   "--mqtt-host", "127.0.0.1", "--mqtt-password", "pw", "--mqtt-ca", str(ca.ca),
                   "--key", KEY, "--out", str(tmp_path / "bundle"), "--json"])
    assert rc == 0
    mqtt = json.loads((board.root / "config.json").read_text())["mqtt"]
    assert mqtt["port"] == 8883 and base64.b64decode(mqtt["ca"]) == ssl.PEM_cert_to_DER_cert(ca.ca_pem())
    result = json.loads(capsys.readouterr().out)
    assert result["flash"]["verified"] is True
    bundle, flashed = _tree(tmp_path / "bundle"), _tree(board.root)
    del bundle["rom.img"]  # the code again as a ROMFS image: for a ROMFS partition, not the filesystem
    assert not stale.exists() and keep.read_bytes() == b"flow"
    assert {k: v for k, v in flashed.items() if k != "slot_a.bin"} == bundle
    assert result["flash"]["files"] == len(bundle)


@needs_socat
def test_a_fresh_micropython_boots_the_flashed_firmware(board, tmp_path):
    assert cli.main(["flash", "--board", "unix-sim", "--port", board.port, "--device-id", "bench-2",
                     "--mqtt-host", "127.0.0.1", "--key", KEY, "--out", str(tmp_path / "bundle"), "--plain-mqtt"]) == 0
    mqtt = json.loads((board.root / "config.json").read_text())["mqtt"]
    assert mqtt["port"] == 1883 and "ca" not in mqtt
    board.stop()  # the board powers off; what was flashed is all that is left
    probe = ("import sys, json; sys.path.insert(0, 'lib'); import fleetflow, umqtt.simple; "
             "c = json.load(open('config.json')); print(c['device_id'], fleetflow.__file__)")
    out = subprocess.run([micropython_exe(), "-X", "heapsize=64k", "-c", probe], cwd=board.root,
                         capture_output=True, text=True, timeout=30, env={**os.environ, "MICROPYPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["bench-2", "lib/fleetflow/__init__.mpy"]


def test_flash_wants_a_ca_or_plain_mqtt_said_out_loud(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no var/tls/ca.pem here
    rc = cli.main(["flash", "--board", "unix-sim", "--bundle-only", "--device-id", "d1",
                   "--mqtt-host", "127.0.0.1", "--key", KEY, "--out", str(tmp_path / "bundle")])
    assert rc == 1
    assert "no CA for MQTT over TLS: give --mqtt-ca FILE" in capsys.readouterr().out
    (tmp_path / "not.pem").write_text("hello")
    rc = cli.main(["flash", "--board", "unix-sim", "--bundle-only", "--device-id", "d1", "--mqtt-host", "127.0.0.1",
                   "--key", KEY, "--out", str(tmp_path / "bundle"), "--mqtt-ca", str(tmp_path / "not.pem")])
    assert rc == 1
    assert "mqtt_ca: not a PEM certificate" in capsys.readouterr().out


def test_flash_refuses_bad_provisioning_before_touching_a_board(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "unix-sim", "--port", str(tmp_path / "nothing"), "--device-id", "a/b",
                   "--mqtt-host", "h", "--key", KEY])
    assert rc == 1
    assert "device_id 'a/b'" in capsys.readouterr().out


@needs_socat
def test_flash_to_a_port_with_no_board_fails_with_mpremote_reason(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "unix-sim", "--port", str(tmp_path / "no-such-tty"), "--device-id", "x",
                   "--mqtt-host", "h", "--key", KEY, "--out", str(tmp_path / "b"), "--plain-mqtt"])
    assert rc == 1
    assert "mpremote" in capsys.readouterr().out


@needs_socat
def test_flashed_board_provisioned_by_the_cloud_boots_and_comes_online(board, tmp_path, capsys):
    """The issue's flash test: provision through the cloud, flash with mpremote over
    a pty, power the board off, boot a fresh MicroPython from what was flashed, and
    see the device online at the cloud (which hears it through the broker)."""
    from tools.sim.simdevice import heap_for
    from tools.infra.stack import Stack

    with Stack(tmp_path / "stack", log=lambda m: None) as stack:
        rc = cli.main(["flash", "--board", "unix-sim", "--port", board.port, "--device-id", "flash-1",
                       "--cloud", stack.api.url, "--api-key", stack.api.api_key,
                       "--out", str(tmp_path / "bundle"), "--json"])
        assert rc == 0
        assert json.loads(capsys.readouterr().out)["flash"]["verified"] is True
        board.stop()
        cfg = json.loads((board.root / "config.json").read_text())
        assert cfg["device_id"] == "flash-1" and cfg["mqtt"]["port"] == stack.broker.port
        assert stack.api.get_device("flash-1")["online"] is False
        env = {**os.environ, "MICROPYPATH": ".frozen:lib"}  # a board has its frozen modules (ssl) and /lib on its path
        dev = subprocess.Popen([micropython_exe(), "-X", f"heapsize={heap_for('lib')}", "main.py"], cwd=board.root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not stack.api.get_device("flash-1")["online"] and time.monotonic() < deadline:
                time.sleep(0.2)
            doc = stack.api.get_device("flash-1")
        finally:
            dev.terminate()
            out = dev.communicate(timeout=10)[0].decode(errors="replace")
        assert doc["online"] is True, out
        assert doc["board"] == "unix-sim" and doc["fw"] and doc["nt_hash"], doc
        assert "online as flash-1" in out


def test_a_real_board_is_never_given_a_loopback_broker(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "esp32-devkitc", "--bundle-only", "--device-id", "k1", "--mqtt-host",
                   "127.0.0.1", "--key", KEY, "--out", str(tmp_path / "b")])
    assert rc == 1
    assert "a board cannot reach it" in capsys.readouterr().out


def test_the_removed_password_file_flag_is_refused_with_advice(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "rp2-pico-w", "--bundle-only", "--device-id", "pico-1", "--mqtt-host",
                   "192.0.2.10", "--key", KEY, "--mosquitto-passwd", str(tmp_path / "passwd")])
    assert rc == 2
    assert "provision the device through the cloud" in capsys.readouterr().out
    assert not (tmp_path / "passwd").exists()


@pytest.mark.parametrize("board, unix, mip, expect_mip, expect_reset", [
    ("esp32-devkitc", False, True, True, True),
    ("rp2-pico-w", False, False, False, True),
    ("unix-sim", True, True, False, False),  # the unix port: no mip (no network), no reset (it would end it)
])
def test_flash_plan_per_board(tmp_path, board, unix, mip, expect_mip, expect_reset):
    from tools.device import bundle as bundle_mod
    from tools.device.flashing import flash_commands

    b = bundle_mod.build_bundle(board, tmp_path / board, {"device_id": "p1", "mqtt_host": "192.0.2.1", "key": KEY})
    plan = flash_commands(b, "/dev/ttyX", unix=unix, mip=mip)
    flat = [arg for cmd in plan.commands for arg in cmd]
    assert all((cmd[0] == "resume") == unix for cmd in plan.commands if cmd not in (["reset"],))
    assert plan.commands[0][-2] == "exec" and "lib/fleetflow" in plan.commands[0][-1]  # stale firmware goes first
    copied = [flat[i + 1] for i, a in enumerate(flat) if a == "cp"]
    assert sorted(c[len(str(b.root)) + 1:] for c in copied) == sorted(f.path for f in b.files)
    assert (["mip", "install", "umqtt.simple"] in plan.commands) == expect_mip
    assert (plan.commands[-1] == ["reset"]) == expect_reset


def test_offline_flash_ships_umqtt_for_the_board_instead_of_mip(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "esp32-devkitc", "--bundle-only", "--offline", "--device-id", "e1",
                   "--mqtt-host", "192.0.2.10", "--key", KEY, "--out", str(tmp_path / "b"), "--json", "--plain-mqtt"])
    assert rc == 0
    umqtt = tmp_path / "b" / "lib" / "umqtt" / "simple.mpy"
    assert umqtt.read_bytes()[:2] == b"M\x06"  # a .mpy the board's MicroPython loads


def test_a_board_bundle_carries_the_ca_for_mqtt_over_tls(tmp_path, capsys):
    rc = cli.main(["flash", "--board", "rp2-pico-w", "--bundle-only", "--device-id", "pico-1", "--mqtt-host",
                   "192.0.2.10", "--mqtt-password", "pw1", "--wifi-ssid", "lab", "--key", KEY,
                   "--out", str(tmp_path / "b"), "--json", "--mqtt-ca", str(ensure_tls(tmp_path / "tls").ca)])
    assert rc == 0
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["mqtt"]["host"] == "192.0.2.10" and cfg["wifi"]["ssid"] == "lab"
    assert cfg["mqtt"]["port"] == 8883 and cfg["mqtt"]["ca"]  # MQTT over TLS, the CA on the board


def test_romfs_flash_plan_deploys_the_image_and_copies_only_the_entry_and_data_files(tmp_path):
    from tools.device import bundle as bundle_mod
    from tools.device.flashing import flash_commands, verified_paths

    b = bundle_mod.build_bundle("esp32-devkitc", tmp_path / "b", {"device_id": "p1", "mqtt_host": "192.0.2.1",
                                                                  "key": KEY}, with_umqtt=True)
    plan = flash_commands(b, "/dev/ttyX", unix=False, romfs=True)
    assert plan.commands[0] == ["romfs", "deploy", str(b.root / "rom.img")]
    flat = [arg for cmd in plan.commands for arg in cmd]
    copied = sorted(flat[i + 1][len(str(b.root)) + 1:] for i, a in enumerate(flat) if a == "cp")
    assert copied == ["board.json", "boot.py", "config.json", "main.py"]
    assert ["mip", "install", "umqtt.simple"] not in plan.commands  # umqtt.simple is in the image
    want = verified_paths(b, romfs=True)
    assert "/rom/lib/fleetflow/agent.mpy" in want and "/rom/lib/umqtt/simple.mpy" in want and "main.py" in want
    assert plan.commands[-1] == ["reset"]


@needs_socat
def test_romfs_flash_to_a_board_without_romfs_says_so_and_what_to_do(board, tmp_path, capsys):
    rc = cli.main(["flash", "--board", "unix-sim", "--port", board.port, "--device-id", "r1", "--romfs",
                   "--mqtt-host", "127.0.0.1", "--key", KEY, "--out", str(tmp_path / "bundle"), "--plain-mqtt"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "ROMFS is not enabled on this device" in out and "flash without --romfs" in out
    assert not (board.root / "config.json").exists()  # refused before anything was copied

"""A simulated fleetflow device: the real firmware under the MicroPython unix port.

    dev = SimDevice(workdir, "dev1", key_hex, broker.host, broker.port, "pw",
                    mqtt_ca=broker.ca_pem())   # the CA: MQTT over TLS; None: plain
    dev.start()      # provisions the flash image on first start, then boots
                     # (config changed since, e.g. the broker's port: rewritten, slots kept)
    dev.kill()       # power cut (SIGKILL): the broker publishes the last will
    dev.restart()    # clean stop, then boot again from the same flash
    dev.stop()       # clean: the agent says offline and disconnects

A device whose watchdog reset it (firmware/fleetflow/hal/sim_wdt.py: the
process ends by SIGUSR1, returncode WDT_RETURNCODE) is powered up again at
once, as a board's watchdog restarts it, with reset cause `watchdog`
(FF_RESET, which the simulated HAL's reset_cause() reads); `watchdog_resets`
counts them. Any other end (crash, power cut, clean stop) is left as it is.

The flash is a LittleFS v2 image the size of a 4 MB ESP32's filesystem
partition (2 MB), formatted and provisioned BY MicroPython
(tools/mpy/sim_provision.py writes config.json and board.json into it), then
mounted by firmware/main.py. The process runs
`.venv/bin/micropython -X heapsize=<HEAP> main.py <image>` from the unix-sim
bundle (tools/device/bundle.py: the firmware compiled by mpy-cross, as it goes onto
a board, with umqtt.simple), MICROPYPATH=<bundle>/lib: compiling the firmware
from source at boot would not fit a board-sized heap. HEAP is 120k with the code run in place from
the bundle's ROMFS image (CODE rom, the default), 192k with it loaded from /lib (FLEETFLOW_SIM_HEAP
overrides both), not the 64k of DESIGN.md's budget: see docs/decisions.md ("Simulated device:
bundle, flash size, heap") and `fleetflow bench agent` for the figures. The
bundle is built once per firmware change into var/simbundle/. Every
SimDevice still running when the interpreter exits is killed (no orphans).

`sensors` is the unix-sim HAL's config (fleetflow.hal.sim: {"dht": {"4":
{"profile": "sine"}}, "pins": {...}, "adc": {...}}); `faults` is merged into
it (e.g. {"dht": {"13": {"profile": "failing"}}}); `settings` overrides agent
settings from fleetflow.config.DEFAULTS (health_interval_s, keepalive_s, ...).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import json
import os
import signal
import subprocess
import threading
import weakref
from pathlib import Path

from cloud.private import write_private
from tools.device import device_config
from tools.infra.proc import owned_popen

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
# Where the device's code runs from: "rom", in place from the bundle's ROMFS
# image mapped outside the heap (tools/sim/romboot.py), as on a board with a
# ROMFS partition or frozen modules; "lib", .mpy files loaded into the heap
# from /lib, as on a stock MicroPython firmware.
CODE = os.environ.get("FLEETFLOW_SIM_CODE", "rom")
# The -X heapsize of a simulated device, by where its code runs from: one
# 8 KB step above the edge `fleetflow bench agent` measures with TLS on
# (112k in ROMFS), since at the edge itself a few bytes more of code tip an
# inline execution next to the running flow into MemoryError
# (docs/decisions.md "Simulated device: bundle, flash size, heap").
# FLEETFLOW_SIM_HEAP overrides both.
HEAPS = {"rom": "120k", "lib": "192k"}


def heap_for(code: str | None = None) -> str:
    """The heap of a simulated device whose code runs from `code` (rom, lib)."""
    return os.environ.get("FLEETFLOW_SIM_HEAP") or HEAPS[code or CODE]


HEAP = heap_for()
PYTHON = REPO / ".venv" / "bin" / "python"
_LIVE: "weakref.WeakSet[SimDevice]" = weakref.WeakSet()
WDT_RETURNCODE = -signal.SIGUSR1  # how the simulated watchdog ends the process


def mpy_env(lib: Path | None = None) -> dict:
    # `.frozen` first, as on a board: MicroPython's `ssl` (the TLS link) is a
    # frozen module, and a MICROPYPATH without it hides it.
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:" + (str(lib) if lib else f"{REPO / 'firmware'}:{REPO / 'build' / 'mpy-lib'}")
    return env


def sim_bundle(board: str = "unix-sim") -> Path:
    """The compiled firmware bundle for `board`, rebuilt when a source changes."""
    from tools.device.bundle import build_bundle

    h = hashlib.sha256(board.encode())
    # the bundle's inputs: the firmware, the board file, the bundler itself and
    # the catalog its board.json takes the nt_hash from
    inputs = [REPO / "boards" / f"{board}.json", REPO / "tools" / "device" / "bundle.py", REPO / "tools" / "device" / "romfs.py",
              REPO / "shared_schema" / "catalog.json"]
    for src in sorted((REPO / "firmware").rglob("*.py")) + inputs:
        h.update(str(src.relative_to(REPO)).encode())
        h.update(src.read_bytes())
    root = REPO / "var" / "simbundle"
    out = root / f"{board}-{h.hexdigest()[:16]}"
    if not (out / "main.py").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root))
        build_bundle(board, tmp / "b")
        try:
            os.rename(tmp / "b", out)
        except OSError:
            pass  # another process built the same bundle first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def device_command(bundle: Path, code: str | None = None) -> list[str]:
    """The MicroPython command a simulated device runs under, up to its own arguments."""
    code = code or CODE
    if code == "rom":
        return [str(PYTHON), str(REPO / "tools" / "sim" / "romboot.py"), str(bundle / "rom.img")]
    if code == "lib":
        return [str(MICROPYTHON)]
    raise ValueError(f"FLEETFLOW_SIM_CODE={code!r}: expected rom or lib")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class SimDevice:
    def __init__(self, workdir, device_id: str, key_hex: str, mqtt_host: str, mqtt_port: int,
                 password: str, board: str = "unix-sim", sensors: dict | None = None,
                 faults: dict | None = None, settings: dict | None = None, prefix: str = "ff",
                 mqtt_ca: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.device_id = device_id
        self.key_hex = key_hex
        self.board = board
        self.image = self.workdir / f"{device_id}.img"
        self.log_path = self.workdir / f"{device_id}.log"
        self.stamp_path = self.workdir / f"{device_id}.provisioned"  # sha of what the image was given
        self.config = json.loads(device_config.render({
            "device_id": device_id, "mqtt_host": mqtt_host, "mqtt_port": mqtt_port,
            "mqtt_user": device_id, "mqtt_password": password, "key": key_hex, "prefix": prefix,
            **({"mqtt_ca": mqtt_ca} if mqtt_ca else {}),
        }, board=board))
        self.config["sim"] = _merge(sensors or {}, faults or {})
        self.config.update(settings or {})
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.watchdog_resets = 0
        self._powered = False  # wanted up: a watchdog reset is followed by a restart
        self._lock = threading.RLock()

    # -- provisioning --
    def _stamp(self) -> str:
        board = sim_bundle(self.board) / "board.json"
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode() + board.read_bytes()).hexdigest()

    def provision(self, keep: bool = False) -> None:
        """Format the flash image and write config.json and board.json (MicroPython does it).
        keep: write the two files into the existing image, its flow slots untouched
        (as `fleetflow flash` of a new config onto a board that has flows)."""
        cfg = self.workdir / f"{self.device_id}.config.json"
        write_private(str(cfg), json.dumps(self.config))  # the broker password and HMAC key
        board = sim_bundle(self.board) / "board.json"  # as `fleetflow flash` copies it
        if self.image.exists() and not keep:
            self.image.unlink()
        proc = subprocess.run([str(MICROPYTHON), str(REPO / "tools" / "mpy" / "sim_provision.py"),
                               str(self.image), str(cfg), str(board), *(["keep"] if keep else [])],
                              cwd=REPO, env=mpy_env(), capture_output=True, text=True, timeout=60)
        cfg.unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"provisioning {self.device_id} failed:\n{proc.stdout}{proc.stderr}")
        self.stamp_path.write_text(self._stamp())

    # -- lifecycle --
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, reset: str = "power") -> None:
        """Power up; `reset` is the cause the device's reset_cause() reports."""
        with self._lock:
            if self.running:
                return
            if not self.image.exists():
                self.provision()
            elif not self.stamp_path.exists() or self.stamp_path.read_text() != self._stamp():
                self.provision(keep=True)  # e.g. a restarted simulator: a new broker port
            bundle = sim_bundle(self.board)
            self._log = open(self.log_path, "ab")
            env = mpy_env(bundle / "lib")
            env["FF_RESET"] = reset
            self.proc = owned_popen(  # dies with its owner, even a SIGKILLed one (tools/infra/proc.py)
                [*device_command(bundle), "-X", f"heapsize={HEAP}", str(bundle / "main.py"), str(self.image)],
                cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            self._powered = True
            _LIVE.add(self)
            threading.Thread(target=self._watchdog_power, args=(self.proc,), daemon=True,
                             name=f"power-{self.device_id}").start()

    def _watchdog_power(self, proc: subprocess.Popen) -> None:
        # The power supply: after a watchdog reset the board starts again.
        proc.wait()
        with self._lock:
            if proc is not self.proc or proc.returncode != WDT_RETURNCODE or not self._powered:
                return
            self.watchdog_resets += 1
            self._close()
            self._powered = False
            self.start(reset="watchdog")

    def stop(self, timeout: float = 5.0) -> None:
        """Clean stop: SIGINT, the agent publishes offline and disconnects."""
        with self._lock:
            self._powered = False
            if self.running:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self._close()

    def kill(self) -> None:
        """Power cut: SIGKILL, no goodbye."""
        with self._lock:
            self._powered = False
            if self.running:
                self.proc.kill()
                self.proc.wait(5)
            self._close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _kill_all() -> None:
    for dev in list(_LIVE):
        dev.kill()

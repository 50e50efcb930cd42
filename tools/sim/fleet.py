"""The fleet simulator: N simulated devices, each a MicroPython unix-port process
running the real unix-sim firmware bundle (tools.sim.simdevice.SimDevice) on its
own LittleFS image, with its own credentials.

    fleet = Fleet(workdir, count=20, mqtt_host=..., mqtt_port=...,
                  provision=stack.provision,          # or LocalProvisioner(broker).provision
                  profile="mixed", faults={"sim-003": ["crash"]})
    with fleet:          # provisions (once; credentials kept in workdir) and starts
        ...
    # every process is stopped on exit, Ctrl-C included

Sensor profiles (the DHT22 on GPIO 4; the ADC on GPIO 34 reads a constant):
steady, sine, noisy, failing (half the reads fail; the dht node retries, and a
read that fails every retry is reported as data); `mixed`
gives device i the i-th of steady/sine/noisy.

Faults per device, each a real mechanism, injected on purpose:
- crash: the DHT driver hands over a garbage reading (a string), so every
  node that uses the temperature raises (a crashing node, every run);
- dead_sensor: the DHT never answers (every read times out);
- boot_loop: the board resets about 1.5 s after every boot (power-cycled by
  the simulator), so a flow on trial is rolled back by the boot counter;
- net_drop: the device's Wi-Fi drops for a minute after every two
  (`net_drop_s`, (up, down) seconds; `fleetflow sim --net-drop`): its
  simulated interface loses the access point, and the relay it reaches the
  broker through cuts every connection meanwhile (tools.sim.netfault.FlakyLink);
  the device notices, runs its flow offline, reconnects by itself and ships
  the runs it kept.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.sim.netfault import FlakyLink

PROFILES = ("steady", "sine", "noisy", "failing")
FAULTS = ("crash", "boot_loop", "dead_sensor", "net_drop")
SENSOR_PIN = "4"
ADC_PIN = "34"
BOOT_LOOP_UP_S = 1.5
BOOT_LOOP_DOWN_S = 0.5


class FleetError(Exception):
    """A device of the fleet could not be provisioned or started."""


@dataclass
class DeviceSpec:
    device_id: str
    profile: str
    faults: list[str] = field(default_factory=list)


def device_ids(count: int, prefix: str = "sim") -> list[str]:
    return [f"{prefix}-{i + 1:03d}" for i in range(count)]


def parse_assignments(items: list[str] | None, choices: tuple[str, ...], ids: list[str], what: str) -> dict[str, list[str]]:
    """`DEVICE=A[,B]` items, DEVICE an id or a 1-based index, into {device id: [A, B]}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        dev, sep, values = item.partition("=")
        if not sep or not values:
            raise FleetError(f"{what} {item!r}: write DEVICE={'|'.join(choices)}")
        if dev.isdigit():
            i = int(dev)
            if not 1 <= i <= len(ids):
                raise FleetError(f"{what} {item!r}: device {i} is not in 1..{len(ids)}")
            dev = ids[i - 1]
        elif dev not in ids:
            raise FleetError(f"{what} {item!r}: no device {dev!r} in the fleet")
        for v in values.split(","):
            if v not in choices:
                raise FleetError(f"{what} {item!r}: {v!r} is not one of {', '.join(choices)}")
            out.setdefault(dev, []).append(v)
    return out


def plan(count: int, prefix: str = "sim", profile: str = "mixed", profiles: dict | None = None,
         faults: dict | None = None) -> list[DeviceSpec]:
    """Which device gets which sensor profile and faults (pure)."""
    if count < 1:
        raise FleetError("a fleet needs at least one device")
    if profile != "mixed" and profile not in PROFILES:
        raise FleetError(f"profile {profile!r} is not one of mixed, {', '.join(PROFILES)}")
    specs = []
    for i, dev in enumerate(device_ids(count, prefix)):
        chosen = (profiles or {}).get(dev)
        p = chosen[-1] if chosen else (PROFILES[i % 3] if profile == "mixed" else profile)
        specs.append(DeviceSpec(dev, p, list(dict.fromkeys((faults or {}).get(dev, [])))))
    return specs


def sensors_config(spec: DeviceSpec, seed: int) -> dict:
    """The simulated HAL's config (firmware/fleetflow/hal/sim.py) for a device (pure)."""
    dht: dict = {"profile": spec.profile, "base": 21.0 + seed % 5, "amp": 4, "period": 30, "humidity": 45,
                 "seed": seed + 1}
    if spec.profile == "failing":
        dht["profile"] = "steady"
        dht["fault_rate"] = 0.5
    if "dead_sensor" in spec.faults:
        dht = {"script": ["timeout"]}
    elif "crash" in spec.faults:
        dht = {"script": [["garbage", 45.0]]}
    return {"dht": {SENSOR_PIN: dht}, "adc": {ADC_PIN: 20000 + 500 * (seed % 7)}}


def kept_credentials(workdir) -> dict:
    """The credentials a previous run kept in the workdir ({device id: creds})."""
    path = Path(workdir) / "credentials.json"
    return json.loads(path.read_text()) if path.exists() else {}


def broker_users(workdir) -> dict[str, str]:
    """{device id: MQTT password} of the devices a previous run provisioned: a
    restarted simulator's new broker must know them (their cloud does not
    provision them again)."""
    return {d: c["mqtt_password"] for d, c in kept_credentials(workdir).items()}


class LocalProvisioner:
    """No cloud: a random password and HMAC key per device, and a broker user."""

    def __init__(self, broker):
        self.broker = broker

    def __call__(self, device_id: str, board: str = "unix-sim") -> dict:
        creds = {"device_id": device_id, "mqtt_password": secrets.token_urlsafe(12), "key": secrets.token_hex(32)}
        if self.broker.ca_pem():
            creds["mqtt_ca"] = self.broker.ca_pem()
        self.broker.add_user(device_id, creds["mqtt_password"])
        return creds


class Fleet:
    def __init__(self, workdir, count: int, *, mqtt_host: str | None, mqtt_port: int | None, provision, prefix: str = "sim",
                 profile: str = "mixed", profiles: dict | None = None, faults: dict | None = None,
                 board: str = "unix-sim", settings: dict | None = None, net_drop_s: tuple = (120, 60), log=print):
        self.workdir = Path(workdir)
        self.specs = plan(count, prefix, profile, profiles, faults)
        self.mqtt_host, self.mqtt_port = mqtt_host, mqtt_port
        self.provision = provision
        self.board = board
        self.settings = settings
        self.net_drop_s = net_drop_s  # (up, down) seconds of a net_drop device's link
        self.log = log
        self.devices: dict = {}
        self.links: dict[str, FlakyLink] = {}
        self.creds_path = self.workdir / "credentials.json"
        self.power_cycles: dict[str, int] = {}  # boot_loop devices: resets so far
        self._stop = threading.Event()
        self._looper: threading.Thread | None = None

    @property
    def ids(self) -> list[str]:
        return [s.device_id for s in self.specs]

    def credentials(self) -> dict:
        """Each device's credentials, provisioned once and kept in the workdir:
        a restarted simulator reuses them (the cloud shows a key only once)."""
        kept = kept_credentials(self.workdir)
        fresh = [s for s in self.specs if s.device_id not in kept]
        for s in fresh:
            kept[s.device_id] = self.provision(s.device_id, self.board)
        if fresh:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.creds_path.write_text(json.dumps(kept, indent=1, sort_keys=True))
            self.creds_path.chmod(0o600)
        return kept

    def start(self) -> "Fleet":
        from tools.sim.simdevice import SimDevice

        creds = self.credentials()
        try:
            for i, spec in enumerate(self.specs):
                c = creds[spec.device_id]
                # no broker given: the one the device's provisioning names
                host = self.mqtt_host or c.get("mqtt_host", "127.0.0.1")
                port = self.mqtt_port or c.get("mqtt_port", 1883)
                sensors = sensors_config(spec, i)
                if "net_drop" in spec.faults:
                    down_file = self.workdir / spec.device_id / "wifi_down"
                    down_file.unlink(missing_ok=True)
                    link = FlakyLink(host, port, *self.net_drop_s, down_file=down_file).start()
                    self.links[spec.device_id] = link
                    host, port = link.host, link.port
                    sensors["wifi"] = {"down_file": str(down_file)}
                dev = SimDevice(self.workdir / spec.device_id, spec.device_id, c["key"], host, port,
                                c["mqtt_password"], board=self.board, sensors=sensors,
                                settings=self.settings, mqtt_ca=c.get("mqtt_ca"))
                self.devices[spec.device_id] = dev
                dev.start()
        except BaseException:
            self.stop()
            raise
        loops = [self.devices[s.device_id] for s in self.specs if "boot_loop" in s.faults]
        if loops:
            self._looper = threading.Thread(target=self._boot_loop, args=(loops,), daemon=True, name="boot-loop")
            self._looper.start()
        self.log(f"fleet: {len(self.devices)} devices started ({self.summary()})")
        return self

    def _boot_loop(self, devices) -> None:
        """Power-cycle the boot-looping devices: up ~1.5 s, down 0.5 s, forever."""
        started = {id(d): time.monotonic() for d in devices}
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for d in devices:
                if d.running and now - started[id(d)] > BOOT_LOOP_UP_S:
                    d.kill()
                    started[id(d)] = now
                    self.power_cycles[d.device_id] = self.power_cycles.get(d.device_id, 0) + 1
                elif not d.running and now - started[id(d)] > BOOT_LOOP_DOWN_S and not self._stop.is_set():
                    d.start()
                    started[id(d)] = now

    def summary(self) -> str:
        profiles: dict[str, int] = {}
        for s in self.specs:
            profiles[s.profile] = profiles.get(s.profile, 0) + 1
        text = ", ".join(f"{n} {p}" for p, n in sorted(profiles.items()))
        faulty = [f"{s.device_id}: {'+'.join(s.faults)}" for s in self.specs if s.faults]
        return text + (f"; faults: {', '.join(faulty)}" if faulty else "")

    def running(self) -> list[str]:
        return [d for d, dev in self.devices.items() if dev.running]

    def stop(self) -> None:
        """Stop every device (each says offline); one that does not stop in time is killed."""
        self._stop.set()
        if self._looper is not None:
            self._looper.join(timeout=5)
        for dev in list(self.devices.values()):
            try:
                dev.stop()
            except Exception:  # one stuck device must not leave the others running
                dev.kill()
        for link in self.links.values():
            link.stop()
        self.devices.clear()
        self.links.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

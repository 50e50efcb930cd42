"""`fleetflow sim`: a fleet of simulated devices running the real firmware.

    fleetflow sim --devices 10                       # + its own broker and cloud (var/sim)
    fleetflow sim --devices 5 --fault 2=crash --fault sim-004=net_drop,dead_sensor
    fleetflow sim --devices 5 --cloud URL --api-key KEY   # provision through a running cloud
    fleetflow sim --devices 3 --no-cloud             # devices and a broker only
    fleetflow sim --devices 3 --plain-mqtt           # no TLS (a lab LAN only)

Each device is a MicroPython unix-port process running the unix-sim firmware
bundle on its own LittleFS image, with its own credentials (kept in the
workdir, so a restart reuses them: the new broker gets their accounts and
each flash image its new port, flows kept; --fresh starts over). Profiles:
steady, sine, noisy, failing, or mixed (default). Faults: crash (a node raises every run), boot_loop,
dead_sensor, net_drop (the device's Wi-Fi goes down for a minute every three,
--net-drop UP,DOWN; it reconnects by itself and ships the runs it kept). The broker it starts speaks MQTT over TLS only (its
CA in <workdir>/stack/tls/ca.pem, or <workdir>/broker/tls/ with --no-cloud),
and each device verifies it against that CA. Ctrl-C stops every process cleanly; if the simulator
is killed outright (SIGKILL), the kernel sends its devices and its Mosquitto
SIGTERM (Linux; tools/infra/proc.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

from tools.cli import client as client_mod
from tools.sim import fleet as fleet_mod

VAR = Path(__file__).resolve().parents[2] / "var" / "sim"


def register(sub) -> None:
    p = sub.add_parser("sim", help="run a fleet of simulated devices (real firmware, MicroPython unix port)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=5, help="how many (default 5)")
    p.add_argument("--prefix", default="sim", help="device ids are PREFIX-001, PREFIX-002, ...")
    p.add_argument("--profile", default="mixed", choices=("mixed", *fleet_mod.PROFILES))
    p.add_argument("--sensor", action="append", metavar="DEV=PROFILE", help="one device's profile (repeatable)")
    p.add_argument("--fault", action="append", metavar="DEV=FAULT[,FAULT]",
                   help=f"faults of a device: {', '.join(fleet_mod.FAULTS)} (repeatable; DEV is an id or 1..N)")
    p.add_argument("--workdir", type=Path, default=VAR, help=f"images, credentials, logs (default {VAR})")
    p.add_argument("--fresh", action="store_true", help="wipe the workdir first (new devices, new credentials)")
    client_mod.add_cloud_args(p)
    p.add_argument("--mqtt-host", help="with --cloud: the broker, if not the one the cloud tells devices")
    p.add_argument("--mqtt-port", type=int)
    p.add_argument("--no-cloud", action="store_true", help="no cloud: a broker, devices provisioned locally")
    p.add_argument("--plain-mqtt", action="store_true", help="plain MQTT, no TLS: only on a lab LAN you trust")
    p.add_argument("--net-drop", type=_up_down, default=(120.0, 60.0), metavar="UP,DOWN",
                   help="a net_drop device's Wi-Fi is up UP seconds, then down DOWN seconds, again and again "
                        "(default 120,60)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print the fleet (ids, API URL, key) as JSON once started")
    p.set_defaults(func=run)


def _up_down(text: str) -> tuple[float, float]:
    try:
        up, down = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write UP,DOWN in seconds, e.g. 120,60") from None
    if up <= 0 or down <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: both must be more than 0 seconds")
    return up, down


def _sigterm(*_):
    raise KeyboardInterrupt


def run(args) -> int:
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    if args.devices < 1:  # before a broker and a cloud are started for nothing
        log(f"sim: --devices {args.devices}: a fleet needs at least one device")
        return 2
    ids = fleet_mod.device_ids(args.devices, args.prefix)
    try:
        profiles = fleet_mod.parse_assignments(args.sensor, fleet_mod.PROFILES, ids, "--sensor")
        faults = fleet_mod.parse_assignments(args.fault, fleet_mod.FAULTS, ids, "--fault")
    except fleet_mod.FleetError as exc:
        log(f"sim: {exc}")
        return 2
    if args.fresh and args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    # Ctrl-C and SIGTERM both stop the fleet cleanly, even when a script started
    # us in the background (where the shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)  # the terminal closed: the devices are in sessions of their own
    stack = broker = fleet = None
    api = None
    try:
        if args.cloud:
            api = client_mod.from_args(args)

            def provision(dev, board):
                return client_mod.credentials(api.provision_device(dev, board=board, tags=["sim"]))

            # None: each device uses the broker its provisioning answer names
            host, port = args.mqtt_host, args.mqtt_port
        elif args.no_cloud:
            from tools.infra.broker import start_broker

            broker = start_broker(args.workdir / "broker", users=fleet_mod.broker_users(args.workdir),
                                  tls=not args.plain_mqtt)
            log(f"sim: broker {broker.kind} on {broker.host}:{broker.port}")
            provision = fleet_mod.LocalProvisioner(broker)
            host, port = broker.host, broker.port
        else:
            from tools.infra.stack import Stack

            stack = Stack(args.workdir / "stack", log=lambda m: log(f"sim: {m}"),
                          users=fleet_mod.broker_users(args.workdir), plain_mqtt=args.plain_mqtt).start()
            api = stack.api
            provision = lambda dev, board: stack.provision(dev, board, tags=["sim"])  # noqa: E731
            host, port = stack.broker.host, stack.broker.port
        fleet = fleet_mod.Fleet(args.workdir, args.devices, mqtt_host=host, mqtt_port=port, provision=provision,
                                prefix=args.prefix, profile=args.profile, profiles=profiles, faults=faults,
                                net_drop_s=args.net_drop,
                                log=lambda m: log(f"sim: {m}"))
        fleet.start()
        if args.json:
            print(json.dumps({"devices": fleet.ids, "api": api.api_url() if api else None,
                              "dashboard": f"{api.url}/" if api else None,
                              "api_key": api.api_key if stack else None, "mqtt": f"{host or 'from provisioning'}:{port or ''}",
                              "workdir": str(args.workdir)}), flush=True)
        if api is not None:
            log(f"sim: API {api.api_url()}" + (f"  (admin key: {api.api_key})" if stack else ""))
            log(f"sim: try  FLEETFLOW_URL={api.url} FLEETFLOW_API_KEY={api.api_key} fleetflow devices list")
            log(f"sim: dashboard {api.url}/  " + ("(the first visitor creates the admin account; or 'Use an API key "
                                                  "instead' with the key above)" if stack else "(log in as on that cloud)"))
        log("sim: running; Ctrl-C stops every device")
        _watch(fleet, api, args.duration, log)
    except KeyboardInterrupt:
        log("sim: stopping")
    except (fleet_mod.FleetError, client_mod.ApiError, RuntimeError) as exc:
        log(f"sim: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            if fleet is not None:
                fleet.stop()
            if stack is not None:
                stack.stop()
            if broker is not None:
                broker.stop()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    log("sim: stopped, no device left running")
    return 0


def _watch(fleet, api, duration_s, log, every_s: float = 10.0) -> None:
    start = time.monotonic()
    last = ""
    next_report = 0.0
    while duration_s is None or time.monotonic() - start < duration_s:
        now = time.monotonic()
        if now >= next_report:
            next_report = now + every_s
            line = f"{len(fleet.running())}/{len(fleet.devices)} processes running"
            if api is not None:
                try:
                    devs = [d for d in api.list_devices() if d["id"] in fleet.devices]
                    vers: dict = {}
                    for d in devs:
                        vers[d.get("ver")] = vers.get(d.get("ver"), 0) + 1
                    online = sum(1 for d in devs if d.get("online"))
                    line += f", {online} online at the cloud, flow versions " + ", ".join(
                        f"{'none' if v is None else 'v' + str(v)}: {n}" for v, n in sorted(vers.items(), key=str))
                except client_mod.ApiError as exc:
                    line += f" (cloud: {exc})"
            if line != last:
                log(f"sim: {line}")
                last = line
        time.sleep(0.5)

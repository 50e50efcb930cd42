"""`fleetflow devices`: list the fleet, show one device, provision a new one.

    fleetflow devices list [--json]
    fleetflow devices show DEVICE [--json]
    fleetflow devices provision [--id ID] [--board BOARD] [--tag T ...] [--json]

`provision` prints the device's MQTT password and HMAC key: the cloud shows
them once, and has made the device's broker account. `fleetflow flash --cloud URL` provisions and flashes in one go.
"""

from __future__ import annotations

import argparse
import json

from tools import client as client_mod

COLUMNS = (("id", 18), ("board", 14), ("state", 10), ("flow", 18), ("ver", 4), ("slot", 4), ("trial", 5))


def register(sub) -> None:
    p = sub.add_parser("devices", help="list, show and provision devices",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="devices_cmd", metavar="ACTION")
    ls = what.add_parser("list", help="every device with its state and active flow")
    show = what.add_parser("show", help="one device in full")
    show.add_argument("device")
    prov = what.add_parser("provision", help="register a device; prints its credentials once")
    prov.add_argument("--id", dest="device_id", help="device id (default: the cloud assigns one)")
    prov.add_argument("--board", default="unix-sim", choices=("esp32-devkitc", "rp2-pico-w", "unix-sim"))
    prov.add_argument("--name")
    prov.add_argument("--tag", action="append", dest="tags", help="repeatable")
    prov.add_argument("--environment", help="e.g. dev or prod")
    for q in (ls, show, prov):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    show.set_defaults(func=_show)
    prov.set_defaults(func=_provision)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _field(dev: dict, key: str):
    value = dev.get(key)
    return "" if value is None else value


def table(devices: list[dict]) -> str:
    """The device list as aligned text columns."""
    lines = ["  ".join(name.upper().ljust(w) for name, w in COLUMNS).rstrip()]
    for d in devices:
        lines.append("  ".join(str(_field(d, name)).ljust(w) for name, w in COLUMNS).rstrip())
    return "\n".join(lines)


def _list(args) -> int:
    devices = client_mod.call(args, "devices", lambda api: api.list_devices())
    if devices is None:
        return 1
    if args.json:
        print(json.dumps(devices, sort_keys=True))
    else:
        print(table(devices))
        online = sum(1 for d in devices if _field(d, "state") == "online")
        print(f"{len(devices)} devices, {online} online")
    return 0


def _show(args) -> int:
    dev = client_mod.call(args, "devices", lambda api: api.get_device(args.device))
    if dev is None:
        return 1
    print(json.dumps(dev, sort_keys=True, indent=None if args.json else 2))
    return 0


def _provision(args) -> int:
    api = client_mod.from_args(args)
    try:
        answer = api.provision_device(args.device_id, board=args.board, name=args.name, tags=args.tags,
                                      environment=args.environment)
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "devices")
        return 1
    creds = client_mod.credentials(answer)
    if args.json:
        print(json.dumps(answer, sort_keys=True))
        return 0
    print(f"provisioned {creds.get('device_id')} ({args.board}) at {api.url}")
    for key in ("mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "key"):
        if key in creds:
            print(f"  {key:14} {creds[key]}")
    print("The password and key are shown only this once. Flash them onto the board with:")
    print(f"  fleetflow flash --board {args.board} --port PORT --device-id {creds.get('device_id')} "
          f"--mqtt-host HOST --mqtt-password {creds.get('mqtt_password', 'PW')} --key {creds.get('key', 'KEY')}"
          + (" --wifi-ssid SSID --wifi-password PW" if args.board != "unix-sim" else ""))
    return 0

"""`fleetflow devices`: the fleet, one device, its runs and logs; provision a new one.

    fleetflow devices list [--tag T] [--environment E] [--board B] [--online | --offline] [--limit N] [--json]
    fleetflow devices show DEVICE [--json]
    fleetflow devices runs DEVICE [--limit N] [--json]
    fleetflow devices logs DEVICE [--limit N] [--level warning]
    fleetflow devices provision [--id ID] [--board BOARD] [--tag T ...] [--json]

`list` follows the API's pages (`next`) until it has every device, or `--limit`.
`runs` shows the latest run records, newest first, with the failing node's
error; `logs` the log lines and node errors in them, oldest first.
`provision` prints the device's MQTT password and HMAC key: the cloud shows
them once, and has made the device's broker account. `fleetflow flash --cloud URL` provisions and flashes in one go.
"""

from __future__ import annotations

import argparse
import json
import sys

from tools.cli import client as client_mod
from tools.cli import ui

COLUMNS = ("id", "board", "state", "flow", "ver", "slot", "trial", "tags", "last_seen")
LEVELS = ("debug", "info", "warning", "error")
PAGE = 200  # devices asked for per request


def register(sub) -> None:
    p = sub.add_parser("devices", help="list, show and provision devices; their runs and logs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="devices_cmd", metavar="ACTION")
    ls = what.add_parser("list", help="devices with their state and active flow (filters, all pages)")
    ls.add_argument("--tag", help="only devices with this tag")
    ls.add_argument("--environment", help="only devices in this environment (dev, prod, ...)")
    ls.add_argument("--board", help="only devices of this board")
    online = ls.add_mutually_exclusive_group()
    online.add_argument("--online", dest="online", action="store_const", const=True, help="only online devices")
    online.add_argument("--offline", dest="online", action="store_const", const=False,
                        help="only devices not online now")
    ls.add_argument("--limit", type=int, help="show at most this many")
    show = what.add_parser("show", help="one device: identity, state, active flow, health")
    show.add_argument("device")
    runs = what.add_parser("runs", help="the device's latest run records, newest first")
    runs.add_argument("device")
    runs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    logs = what.add_parser("logs", help="log lines and node errors of the device's latest runs, oldest first")
    logs.add_argument("device")
    logs.add_argument("--limit", type=int, default=50, help="runs to read (default 50)")
    logs.add_argument("--level", choices=LEVELS, default="debug", help="the lowest level shown")
    prov = what.add_parser("provision", help="register a device; prints its credentials once")
    prov.add_argument("--id", dest="device_id", help="device id (default: the cloud assigns one)")
    prov.add_argument("--board", default="unix-sim", choices=("esp32-devkitc", "rp2-pico-w", "unix-sim"))
    prov.add_argument("--name")
    prov.add_argument("--tag", action="append", dest="tags", help="repeatable")
    prov.add_argument("--environment", help="e.g. dev or prod")
    for q in (ls, show, runs, logs, prov):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    ls.set_defaults(func=_list)
    show.set_defaults(func=_show)
    runs.set_defaults(func=_runs)
    logs.set_defaults(func=_logs)
    prov.set_defaults(func=_provision)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def filters(args) -> dict:
    """The GET /devices query from the command line (pure)."""
    query = {"tag": args.tag, "environment": args.environment, "board": args.board}
    if args.online is not None:
        query["online"] = "true" if args.online else "false"
    return {k: v for k, v in query.items() if v is not None}


def fetch(api, query: dict, limit: int | None) -> list[dict]:
    """Devices page after page (following `next`) until there are no more or `limit`."""
    out: list[dict] = []
    size = PAGE if limit is None else max(1, min(PAGE, limit))
    for page in api.pages("/devices", "devices", limit=size, **query):
        out += page
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def rows(devices: list[dict]) -> list[list]:
    return [[d.get(c) for c in COLUMNS] for d in devices]


def _list(args) -> int:
    devices = client_mod.call(args, "devices", lambda api: fetch(api, filters(args), args.limit))
    if devices is None:
        return 1
    if args.json:
        ui.print_json(devices)
        return 0
    ui.print_table(COLUMNS, rows(devices))
    online = sum(1 for d in devices if d.get("online"))
    print(f"{len(devices)} devices, {online} online")
    return 0


def panel_fields(dev: dict) -> list[tuple[str, object]]:
    """What `devices show` shows, in order (pure)."""
    health = dev.get("health") or {}
    heap = dev.get("heap")
    fields = [
        ("name", dev.get("name") or None), ("board", dev.get("board")), ("state", dev.get("state")),
        ("last seen", dev.get("last_seen")), ("tags", dev.get("tags") or None),
        ("environment", dev.get("environment")), ("firmware", dev.get("fw")),
        ("flow", f"{dev['flow']} v{dev.get('ver')}" if dev.get("flow") else "none"),
        ("slot", dev.get("slot")), ("on trial", dev.get("trial") if dev.get("flow") else None),
        ("sequence", dev.get("seq")), ("free heap", f"{heap:,} B" if isinstance(heap, int) else None),
    ]
    if health:
        fields += [("uptime", f"{health.get('uptime_s', 0):g} s"),
                   ("runs", f"{health.get('runs', 0)} ({health.get('errors', 0)} failed)"),
                   ("last error", health.get("last_error"))]
    failed = dev.get("failed")
    if isinstance(failed, dict) and failed.get("reason"):
        fields.append(("last rollback", failed["reason"]))
    fields += [("node types", len(dev.get("types") or []) or None), ("provisioned", dev.get("created_at"))]
    return fields


def _show(args) -> int:
    dev = client_mod.call(args, "devices", lambda api: api.get_device(args.device))
    if dev is None:
        return 1
    if args.json:
        ui.print_json(dev)
    else:
        ui.console().print(ui.panel(f"device {dev['id']}", panel_fields(dev)))
    return 0


def _get_runs(args) -> dict | None:
    limit = max(1, min(args.limit, 500))
    return client_mod.call(args, "devices", lambda api: api.get(f"/devices/{args.device}/runs", limit=limit))


def failing_node(run: dict) -> str | None:
    """`node: error` of a run's first failing node, else the run's own error."""
    for node in run.get("nodes") or []:
        if node.get("err"):
            return f"{node['id']}: {node['err']}"
    return run.get("err")


def _runs(args) -> int:
    got = _get_runs(args)
    if got is None:
        return 1
    if args.json:
        ui.print_json(got["runs"])
        return 0
    ui.print_table(("run", "received", "flow", "ver", "exec", "trigger", "status", "µs", "error"),
                   [[r.get("run"), r.get("received_at"), r.get("flow"), r.get("ver"), r.get("exec"),
                     r.get("trigger"), r.get("status"), r.get("us"), failing_node(r)] for r in got["runs"]],
                   empty=f"device {args.device} has sent no runs yet")
    return 0


def log_lines(runs: list[dict], level: str = "debug") -> list[tuple]:
    """(received, run, level, node, text) of the runs' log lines and node
    errors, oldest run first (pure; `runs` newest first as the API gives them)."""
    floor = LEVELS.index(level)
    out = []
    for r in reversed(runs):
        for entry in r.get("logs") or []:
            if isinstance(entry, list) and len(entry) >= 3 and entry[0] in LEVELS and LEVELS.index(entry[0]) >= floor:
                out.append((r.get("received_at"), r.get("run"), entry[0], entry[1], str(entry[2])))
        for node in r.get("nodes") or []:
            if node.get("err"):
                out.append((r.get("received_at"), r.get("run"), "error", node.get("id"), node["err"]))
        if r.get("err") and not any(n.get("err") for n in r.get("nodes") or []):
            out.append((r.get("received_at"), r.get("run"), "error", "", r["err"]))
    return out


def _logs(args) -> int:
    got = _get_runs(args)
    if got is None:
        return 1
    lines = log_lines(got["runs"], args.level)
    if args.json:
        ui.print_json([dict(zip(("received_at", "run", "level", "node", "text"), line)) for line in lines])
        return 0
    ui.print_table(("received", "run", "level", "node", "text"), lines,
                   empty=f"no log lines at {args.level} or above in device {args.device}'s last {args.limit} runs")
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
          + (" --wifi-ssid SSID --wifi-password PW" if args.board != "unix-sim" else ""), file=sys.stdout)
    return 0

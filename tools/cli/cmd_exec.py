"""`fleetflow exec`: run a published flow once on devices, with overrides, and read what it did.

    fleetflow exec run FLOW --devices d1,d2 [--var threshold=25] [--param n3.value=25] [--timeout 30s]
    fleetflow exec list [--flow FLOW] [--status failed]
    fleetflow exec show EXECUTION            # each device's run: node timings, outputs, errors
    fleetflow exec logs EXECUTION [--level warning]
    fleetflow exec cancel EXECUTION
    fleetflow exec retry EXECUTION [--all]   # the devices that did not complete (--all: every device)

`run` shows each device's status live until the execution finishes
(`--no-wait` returns at once) and exits 0 only when it completed. A `--var`
or `--param` value is read as JSON when it is JSON (`25`, `true`,
`"text"`), else taken as text.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Group
from rich.text import Text

from tools.cli import client as client_mod
from tools.cli import ui
from tools.cli.live import follow

FINISHED = ("completed", "failed", "cancelled", "timed_out")
STATUSES = ("pending", "running", *FINISHED)
LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    """A command-line value that cannot be used, worded for the user."""


def register(sub) -> None:
    p = sub.add_parser("exec", help="run a flow once on devices (with overrides) and read its per-node log",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="exec_cmd", metavar="ACTION")
    run = what.add_parser("run", help="run a published flow version once, and follow it live")
    run.add_argument("flow", help="flow id")
    run.add_argument("--version", type=int, help="published version (default: the latest)")
    targets = run.add_mutually_exclusive_group(required=True)
    targets.add_argument("--devices", help="comma-separated device ids")
    targets.add_argument("--tag", help="every device with this tag")
    targets.add_argument("--environment", help="every device in this environment")
    targets.add_argument("--all", action="store_true", help="every connected device")
    run.add_argument("--include-offline", action="store_true",
                     help="with --all: every device, the offline and never-seen ones too (they time out)")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="override a flow variable (repeatable)")
    run.add_argument("--param", action="append", default=[], metavar="NODE.PARAM=VALUE",
                     help="override one node's param (repeatable)")
    run.add_argument("--timeout", help="give up on a device after this long, e.g. 30s (default 60s)")
    run.add_argument("--no-wait", action="store_true", help="start and return at once")
    run.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    ls = what.add_parser("list", help="executions, newest first")
    ls.add_argument("--flow", help="only this flow's")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--limit", type=int, default=50)
    show = what.add_parser("show", help="an execution with each device's run, node by node")
    show.add_argument("execution")
    logs = what.add_parser("logs", help="the log lines and node errors of an execution's runs")
    logs.add_argument("execution")
    logs.add_argument("--level", choices=LEVELS, help="the lowest level shown")
    cancel = what.add_parser("cancel", help="cancel a running execution")
    cancel.add_argument("execution")
    retry = what.add_parser("retry", help="run again on the devices that did not complete")
    retry.add_argument("execution")
    retry.add_argument("--all", action="store_true", help="replay: run again on every device")
    retry.add_argument("--no-wait", action="store_true")
    retry.add_argument("--interval", type=float, default=0.5)
    for q, func in ((run, _run), (ls, _list), (show, _show), (logs, _logs), (cancel, _cancel), (retry, _retry)):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print the API's answer as JSON")
        q.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def overrides(var: list[str], param: list[str]) -> dict:
    """The execution's `overrides` from --var NAME=VALUE and --param NODE.PARAM=VALUE (pure)."""
    out: dict = {"vars": {}, "params": {}}
    for item in var:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise UsageError(f"--var {item!r}: write NAME=VALUE, e.g. --var threshold=25")
        out["vars"][name] = parse_value(value)
    for item in param:
        key, eq, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not eq or not dot or not node or not name:
            raise UsageError(f"--param {item!r}: write NODE.PARAM=VALUE, e.g. --param n3.value=25")
        out["params"].setdefault(node, {})[name] = parse_value(value)
    return out


def execution_body(args) -> dict:
    """The POST /executions body from the command line (pure)."""
    body: dict = {"flow_id": args.flow}
    if args.version is not None:
        body["version"] = args.version
    if args.devices:
        body["target_devices"] = [d.strip() for d in args.devices.split(",") if d.strip()]
    elif args.tag:
        body["target_tags"] = [args.tag]
    elif args.environment:
        body["environment"] = args.environment
    else:
        body["all"] = True
        if args.include_offline:
            body["include_offline"] = True
    over = overrides(args.var, args.param)
    if over["vars"] or over["params"]:
        body["overrides"] = over
    if args.timeout:
        body["timeout"] = args.timeout
    return body


def failing_node(record: dict | None) -> str | None:
    if not record:
        return None
    for node in record.get("nodes") or []:
        if node.get("err"):
            return f"{node['id']}: {node['err']}"
    return record.get("err")


def _counts(exe: dict) -> str:
    counts = exe.get("counts") or {}
    return "  ".join(f"{k} {v}" for k, v in counts.items() if v) or "no targets"


def summary_line(exe: dict) -> str:
    return f"execution {exe.get('id')}  flow {exe.get('flow_id')} v{exe.get('version')}  {exe.get('status')}  {_counts(exe)}"


def target_rows(exe: dict) -> list[list]:
    rows = []
    for t in exe.get("targets") or []:
        rec = t.get("record") or {}
        us = rec.get("us")
        rows.append([t.get("device_id"), t.get("status"), t.get("run"),
                     f"{us / 1000:.1f} ms" if isinstance(us, int) and us > 0 else None,
                     failing_node(rec) or t.get("reason")])
    return rows


TARGET_COLUMNS = ("device", "status", "run", "time", "error")


def view(exe: dict):
    return Group(Text(summary_line(exe)), ui.table(TARGET_COLUMNS, target_rows(exe)))


def lines(exe: dict) -> list[str]:
    out = [summary_line(exe)]
    for device, status, _run, _t, err in target_rows(exe):
        out.append(f"  {device}: {status}" + (f": {err}" if err else ""))
    return out


def _follow(api, exe_id: str, args) -> dict:
    out = sys.stderr if args.json else sys.stdout
    return follow(lambda: api.get(f"/executions/{exe_id}"), view, lines,
                  lambda doc: doc.get("status") in FINISHED, out=out, interval_s=args.interval)


def _started(api, exe: dict, args) -> int:
    out = sys.stderr if args.json else sys.stdout
    print(f"started execution {exe['id']} of {exe.get('flow_id')} v{exe.get('version')}: "
          f"{api.api_url('/executions/' + exe['id'])}", file=out)
    if args.no_wait:
        if args.json:
            ui.print_json(exe)
        return 0
    exe = _follow(api, exe["id"], args)
    if args.json:
        ui.print_json(exe)
    return 0 if exe.get("status") == "completed" else 1


def _run(args) -> int:
    api = client_mod.from_args(args)
    try:
        body = execution_body(args)
        return _started(api, api.post("/executions", body), args)
    except UsageError as exc:
        print(f"exec: {exc}", file=sys.stderr)
        return 2
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "exec")
        return 1


def _retry(args) -> int:
    api = client_mod.from_args(args)
    try:
        exe = api.post(f"/executions/{args.execution}/{'replay' if args.all else 'retry'}")
        return _started(api, exe, args)
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "exec")
        return 1


def _list(args) -> int:
    def fetch(api):
        out: list = []
        for page in api.pages("/executions", "executions", flow_id=args.flow, status=args.status,
                              limit=max(1, min(args.limit, 1000))):
            out += page
            if len(out) >= args.limit:
                break
        return out[:args.limit]

    exes = client_mod.call(args, "exec", fetch)
    if exes is None:
        return 1
    if args.json:
        ui.print_json(exes)
        return 0
    ui.print_table(("id", "flow", "ver", "status", "created", "finished", "retry of", "pipeline run"),
                   [[e.get("id"), e.get("flow_id"), e.get("version"), e.get("status"), e.get("created_at"),
                     e.get("finished_at"), e.get("retry_of"), e.get("pipeline_run")] for e in exes],
                   empty="no executions")
    return 0


def _get(args, level: str | None = None):
    return client_mod.call(args, "exec", lambda api: api.get(f"/executions/{args.execution}", level=level))


def _show(args) -> int:
    exe = _get(args)
    if exe is None:
        return 1
    if args.json:
        ui.print_json(exe)
        return 0
    con = ui.console()
    over = exe.get("overrides") or {}
    con.print(ui.panel(f"execution {exe['id']}", [
        ("flow", f"{exe.get('flow_id')} v{exe.get('version')}"), ("status", exe.get("status")),
        ("targets", _counts(exe)), ("variables", over.get("vars") or None), ("params", over.get("params") or None),
        ("timeout", f"{exe.get('timeout'):g} s" if isinstance(exe.get("timeout"), (int, float)) else None),
        ("created", exe.get("created_at")), ("finished", exe.get("finished_at")),
        ("retry of", exe.get("retry_of")), ("pipeline run", exe.get("pipeline_run"))]))
    for t in exe.get("targets") or []:
        rec = t.get("record")
        title = f"{t['device_id']}: {t['status']}" + (f" ({t['reason']})" if t.get("reason") else "")
        if not rec:
            con.print(ui.Text(title + "  (no run record yet)"))
            continue
        con.print(ui.table(("node", "type", "µs", "port", "output", "error"),
                           [[n.get("id"), n.get("type"), n.get("us"), n.get("port"), n.get("out"), n.get("err")]
                            for n in rec.get("nodes") or []], title=f"{title}, run {rec.get('run')}"))
    return 0


def log_rows(exe: dict) -> list[list]:
    rows = []
    for t in exe.get("targets") or []:
        rec = t.get("record") or {}
        for entry in rec.get("logs") or []:
            if isinstance(entry, list) and len(entry) >= 3:
                rows.append([t["device_id"], entry[0], entry[1], entry[2]])
        node_errors = [[t["device_id"], "error", n.get("id"), n["err"]] for n in rec.get("nodes") or [] if n.get("err")]
        if not node_errors and t.get("reason"):  # the device's own word, before (or without) its run record
            node_errors = [[t["device_id"], "error", "", t["reason"]]]
        rows += node_errors
    return rows


def _logs(args) -> int:
    exe = _get(args, args.level)
    if exe is None:
        return 1
    rows = log_rows(exe)
    if args.json:
        ui.print_json([dict(zip(("device_id", "level", "node", "text"), r)) for r in rows])
        return 0
    ui.print_table(("device", "level", "node", "text"), rows, empty=f"execution {args.execution}: no log lines")
    return 0


def _cancel(args) -> int:
    exe = client_mod.call(args, "exec", lambda api: api.post(f"/executions/{args.execution}/cancel"))
    if exe is None:
        return 1
    if args.json:
        ui.print_json(exe)
    else:
        print(f"execution {args.execution}: {exe.get('status')}")
    return 0

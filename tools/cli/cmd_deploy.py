"""`fleetflow deploy`: roll a published flow version out to devices, and watch it.

    fleetflow deploy create FLOW --strategy canary --all [--canary-percentage 10 --canary-delay 30s]
    fleetflow deploy create FLOW --strategy rolling --devices dev-1,dev-2 --batch-size 5 --batch-delay 10s
    fleetflow deploy create FLOW --strategy all_at_once --all --base-per-minute 50 --max-per-minute 1000 \
        --failure-threshold 5 --min-executed 100
    fleetflow deploy watch DEPLOYMENT
    fleetflow deploy list | show DEPLOYMENT
    fleetflow deploy pause|resume|rollback|cancel DEPLOYMENT

`create` creates the deployment, starts it, and shows phases, batches and
target counts live until it finishes (`--no-wait` returns at once). The exit
status is 0 only when the deployment completed. `--json` prints the final
deployment as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from shared_schema.jsontext import JSONTextError, loads
from tools.cli import client as client_mod
from tools.cli import deploy_progress, ui

STRATEGIES = ("all_at_once", "rolling", "canary", "blue_green")  # the API's (POST /deployments)
FAILED_SHOWN = 5  # failed devices whose latest failing run is read to show the node's error

# Strategy settings passed through to the deployment's config, as given.
SETTINGS = (
    ("batch_size", int, "rolling: devices per batch (default 10)"),
    ("batch_delay", str, "rolling: wait between batches, e.g. 30s, 5m"),
    ("failure_threshold", float, "rolling: failed share of a batch that stops it, percent (default 20)"),
    ("canary_percentage", float, "canary: share of targets in the canary group, percent (default 10)"),
    ("canary_delay", str, "canary: how long to watch the canary, e.g. 30s, 30m"),
    ("switch_delay", str, "blue_green: wait before switching, e.g. 10m"),
    ("timeout", str, "give up after this long, e.g. 30m"),
    # rate control and the abort rule's sample (all_at_once, rolling, canary)
    ("max_per_minute", int, "at most this many deploys a minute"),
    ("base_per_minute", int, "ramp: start at this many deploys a minute"),
    ("increment_factor", float, "ramp: multiply the rate by this (default 2)"),
    ("increment_after_successes", int, "ramp: raise the rate after this many successes (default 10)"),
    ("min_executed", int, "judge --failure-threshold over all finished targets once this many finished"),
)


def register(sub) -> None:
    p = sub.add_parser("deploy", help="create, start and watch deployments",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="deploy_cmd", metavar="ACTION")

    c = what.add_parser("create", help="create and start a deployment, with live progress")
    c.add_argument("flow", help="flow id")
    c.add_argument("--version", type=int, help="published version (default: the latest)")
    c.add_argument("--strategy", choices=STRATEGIES, default="rolling")
    targets = c.add_mutually_exclusive_group(required=True)
    targets.add_argument("--devices", help="comma-separated device ids")
    targets.add_argument("--tag", help="every device with this tag")
    targets.add_argument("--environment", help="every device in this environment (dev, prod, ...)")
    targets.add_argument("--all", action="store_true", help="every device")
    for name, kind, help_ in SETTINGS:
        c.add_argument("--" + name.replace("_", "-"), type=kind, help=help_)
    c.add_argument("--no-auto-rollback", action="store_true")
    c.add_argument("--no-health-check", action="store_true")
    c.add_argument("--health", help='health rule as JSON, e.g. \'{"runs": 3, "seconds": 5, "max_error_rate": 0.25}\'')
    c.add_argument("--offline", choices=("wait", "skip", "fail"), default=None,
                   help="offline or never-seen targets: wait for them (default, up to the timeout), skip them, "
                        "or refuse the deployment")
    c.add_argument("--force", action="store_true", help="deploy a quarantined version named with --version")
    c.add_argument("--rehearse", action=argparse.BooleanOptionalAction, default=None,
                   help="run it first on simulated twins fed with the targets' recorded readings "
                        "(default: on, except all-at-once on one device)")
    c.add_argument("--rehearsal-runs", type=int, help="runs per twin (default 20)")
    c.add_argument("--dry-run", action="store_true",
                   help="only the pre-flight: who is ready, offline, never seen or lacks a node; nothing is created")
    c.add_argument("--no-start", action="store_true", help="create only")
    c.add_argument("--no-wait", action="store_true", help="start and return at once")
    c.add_argument("--interval", type=float, default=0.5, help="seconds between progress polls")
    c.set_defaults(func=_create)

    w = what.add_parser("watch", help="live progress of a deployment until it finishes")
    w.add_argument("deployment")
    w.add_argument("--interval", type=float, default=0.5)
    w.set_defaults(func=_watch)

    ls = what.add_parser("list", help="every deployment")
    ls.set_defaults(func=_list)
    show = what.add_parser("show", help="one deployment with its targets")
    show.add_argument("deployment")
    show.set_defaults(func=_show)
    actions = []
    for action in ("pause", "resume", "rollback", "cancel"):
        a = what.add_parser(action, help=f"{action} a deployment")
        a.add_argument("deployment")
        a.set_defaults(func=lambda args, action=action: _action(args, action))
        actions.append(a)
    for q in (c, w, ls, show, *actions):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def deployment_body(args) -> dict:
    """The POST /deployments body from the command line (pure)."""
    body: dict = {"flow_id": args.flow, "strategy": args.strategy}
    if args.version is not None:
        body["version"] = args.version
    if args.devices:
        body["target_devices"] = [d.strip() for d in args.devices.split(",") if d.strip()]
    elif args.tag:
        body["target_tags"] = [args.tag]
    elif args.environment:
        body["environment"] = args.environment
    if args.all:
        body["all"] = True
    if getattr(args, "offline", None):
        body["offline"] = args.offline
    if getattr(args, "force", False):
        body["force"] = True
    if getattr(args, "rehearse", None) is not None:
        body["rehearse"] = args.rehearse
    if getattr(args, "rehearsal_runs", None):
        body["rehearsal_runs"] = args.rehearsal_runs
    config: dict = {"auto_rollback": not args.no_auto_rollback, "health_check": not args.no_health_check}
    for name, _kind, _help in SETTINGS:
        value = getattr(args, name)
        if value is not None:
            config[name] = value
    if args.health:
        try:
            config["health"] = loads(args.health)
        except JSONTextError as exc:
            raise SystemExit(f"deploy: --health is not JSON ({exc}); e.g. '{{\"runs\": 3, \"seconds\": 30}}'") from None
    body["config"] = config
    return body


def node_errors(api, dep: dict, limit: int = FAILED_SHOWN) -> dict[str, str]:
    """device -> 'node: error' of its latest failed run of the deployed version,
    for the first `limit` failed or rolled-back targets (their run records)."""
    found: dict[str, str] = {}
    bad = [t["device_id"] for t in dep.get("targets") or [] if t["status"] in ("failed", "rolled_back")]
    for device in bad[:limit]:
        try:
            runs = api.get(f"/devices/{device}/runs", limit=50)["runs"]
        except client_mod.ApiError:
            continue
        for r in runs:
            if r.get("status") == "failed" and r.get("flow") == dep.get("flow_id") and r.get("ver") == dep.get("version"):
                err = next((f"{n['id']}: {n['err']}" for n in r.get("nodes") or [] if n.get("err")), r.get("err"))
                if err:
                    found[device] = err
                    break
    return found


def _finish(dep: dict, as_json: bool, api=None) -> int:
    if as_json:
        print(json.dumps(dep, sort_keys=True))
    else:
        s = deploy_progress.summarize(dep)
        print(f"deployment {s['id']}: {s['status']}" + (f" ({dep['reason']})" if dep.get("reason") else ""))
        errors = node_errors(api, dep) if api is not None else {}
        for t in dep.get("targets") or []:
            if t["status"] in ("failed", "rolled_back"):
                print(f"  {t['device_id']}: {t['status']}" + (f": {t['reason']}" if t.get("reason") else ""))
                if t["device_id"] in errors and errors[t["device_id"]] not in (t.get("reason") or ""):
                    print(f"    failing node {errors[t['device_id']]}")
    return 0 if dep.get("status") == "completed" else 1


def _progress_out(args):
    return sys.stderr if args.json else sys.stdout


def _create(args) -> int:
    api = client_mod.from_args(args)
    try:
        body = deployment_body(args)
        if args.all:
            if not api.get("/devices", limit=1)["devices"]:
                print(f"deploy: --all: the cloud at {api.url} has no devices yet; provision some first",
                      file=sys.stderr)
                return 1
        if args.dry_run:
            return _dry_run(api.post("/deployments?dry_run=true", body), args.json)
        dep = api.create_deployment(body)
        out = _progress_out(args)
        print(f"created deployment {dep['id']} ({args.strategy}) of {args.flow}: "
              f"{api.api_url('/deployments/' + dep['id'])}", file=out)
        if args.no_start:
            return _finish(dep, args.json) if args.json else 0
        dep = api.deployment_action(dep["id"], "start") or dep
        if args.no_wait:
            if args.json:
                print(json.dumps(dep, sort_keys=True))
            return 0
        dep = deploy_progress.watch(api, dep["id"], interval_s=args.interval, out=out)
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "deploy")
        return 1
    return _finish(dep, args.json, api)


def _dry_run(dry: dict, as_json: bool) -> int:
    """Print a pre-flight; 1 when creating the deployment would be refused."""
    if as_json:
        print(json.dumps(dry, sort_keys=True))
        return 1 if dry["refused"] else 0
    pf = dry["preflight"]
    counts = ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in pf["counts"].items() if n)
    print(f"dry run: {dry['flow_id']} v{dry['version']} ({dry['strategy']}), {pf['total']} target(s): {counts}")
    if dry.get("quarantined"):
        print(f"  version {dry['version']} is quarantined: {dry['quarantined'].get('reason')}")
    shown = [t for t in pf["targets"] if t["class"] != "ready"]
    if shown:
        ui.print_table(("device", "pre-flight", "detail"),
                       [[t["device_id"], t["class"].replace("_", " "), t["detail"]] for t in shown])
    if dry["refused"]:
        print(f"would be refused ({dry['refused']['status']}): {dry['refused']['detail']}")
        return 1
    skipped = dry.get("skipped")
    print("would be created" + (f"; {skipped} offline target(s) skipped" if skipped else "")
          + (f"; offline targets: {dry['offline']}" if dry["offline"] == "wait" and
             (pf["counts"]["offline"] or pf["counts"]["never_seen"]) else ""))
    return 0


def _watch(args) -> int:
    api = client_mod.from_args(args)
    try:
        dep = deploy_progress.watch(api, args.deployment, interval_s=args.interval, out=_progress_out(args))
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "deploy")
        return 1
    return _finish(dep, args.json, api)


def _list(args) -> int:
    deps = client_mod.call(args, "deploy", lambda api: api.list_deployments())
    if deps is None:
        return 1
    if args.json:
        print(json.dumps(deps, sort_keys=True))
        return 0
    rows = []
    for d in deps:
        s = deploy_progress.summarize(d)
        rows.append([d.get("id"), d.get("flow_id"), d.get("version"), s["strategy"], s["status"],
                     f"{d.get('completed_targets', s['counts']['success'])}/{s['total']}", d.get("created_at"),
                     _took(d), d.get("reason")])
    ui.print_table(("id", "flow", "ver", "strategy", "status", "done", "created", "took", "reason"), rows,
                   empty="no deployments")
    return 0


def _took(dep: dict) -> str | None:
    """How long it ran (until now when it still runs)."""
    start = deploy_progress.doc_time(dep.get("started_at"))
    end = deploy_progress.doc_time(dep.get("finished_at"))
    if start is None:
        return None
    seconds = (end or time.time()) - start
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _show(args) -> int:
    def fetch(api):
        dep = api.deployment(args.deployment)
        if "targets" not in dep:  # a big one: its targets are paged
            dep["targets"] = api.deployment_targets(args.deployment)
        return dep, node_errors(api, dep)

    got = client_mod.call(args, "deploy", fetch)
    if got is None:
        return 1
    dep, errors = got
    if args.json:
        print(json.dumps(dep, sort_keys=True))
        return 0
    settings = dep.get("settings") or {}
    s = deploy_progress.summarize(dep)
    con = ui.console()
    con.print(ui.panel(f"deployment {dep['id']}", [
        ("flow", f"{dep.get('flow_id')} v{dep.get('version')}"), ("strategy", dep.get("strategy")),
        ("status", dep.get("status")), ("phase", dep.get("phase")), ("reason", dep.get("reason")),
        ("targets", "  ".join(f"{k} {v}" for k, v in s["counts"].items() if v) or "none"),
        ("health rule", deploy_progress.health_words(settings.get("health"), settings.get("health_check", True))),
        ("created", dep.get("created_at")), ("started", dep.get("started_at")), ("finished", dep.get("finished_at")),
        ("took", _took(dep))]))
    ui.print_table(("device", "batch", "status", "acks", "seq", "updated", "reason"),
                   [[t.get("device_id"), t.get("batch"), t.get("status"),
                     deploy_progress.acks_text(t.get("ack"), t.get("status")), t.get("seq"), t.get("updated_at"),
                     (t.get("reason") or "") + (f" [node {errors[t['device_id']]}]" if t.get("device_id") in errors
                                                and errors[t["device_id"]] not in (t.get("reason") or "") else "")]
                    for t in dep.get("targets") or []])
    return 0


def _action(args, action: str) -> int:
    dep = client_mod.call(args, "deploy", lambda api: api.deployment_action(args.deployment, action))
    if dep is None:
        return 1
    if args.json:
        print(json.dumps(dep, sort_keys=True))
    else:
        print(f"deployment {args.deployment}: {action} -> {dep.get('status', '?')}")
    return 0

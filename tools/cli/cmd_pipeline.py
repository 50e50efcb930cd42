"""`fleetflow pipeline`: flows run one after another on the same devices.

    fleetflow pipeline create NAME FLOW1 FLOW2 [...] [--continue-on-failure] (--devices d1,d2 | --tag T | --environment E | --all)
    fleetflow pipeline update PIPELINE [--name N] [--description D] [--flows F1 F2 ...] [--continue-on-failure | --stop-on-failure] [--manual N] [--devices ... | --tag T | --environment E | --all]
    fleetflow pipeline list
    fleetflow pipeline run PIPELINE [--no-wait]      # starts a run and follows its steps live
    fleetflow pipeline show PIPELINE [RUN]           # the pipeline and its runs, or one run step by step
    fleetflow pipeline cancel PIPELINE RUN
    fleetflow pipeline advance PIPELINE RUN (--done | --failed)   # "Step Done" / "Step Failed"

A step whose flow fails stops the run (`--continue-on-failure`: the next step
runs anyway). `run` exits 0 only when the run completed. A step made with
`--manual N` (its number, from 1) waits on a person once its flow has run:
`advance --done` or `--failed` says how it went (and ends any running step
by hand). `update` changes only what it is given (refused while a run is in
progress): `--flows` replaces the steps; `--continue-on-failure`,
`--stop-on-failure` and `--manual` without `--flows` apply to the current
steps (`--manual` then names every manual step).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Group
from rich.text import Text

from tools.cli import client as client_mod
from tools.cli import ui
from tools.cli.live import follow

FINISHED = ("completed", "failed", "cancelled")


def register(sub) -> None:
    p = sub.add_parser("pipeline", help="create, run and follow pipelines (flows in order)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="pipeline_cmd", metavar="ACTION")
    create = what.add_parser("create", help="a pipeline of two or more published flows")
    create.add_argument("name")
    create.add_argument("flows", nargs="+", metavar="FLOW", help="flow ids, in the order they run")
    create.add_argument("--description")
    create.add_argument("--continue-on-failure", action="store_true",
                        help="a failed step does not stop the run (default: it does)")
    create.add_argument("--manual", type=int, action="append", default=[], metavar="N",
                        help="step N (from 1) waits for `pipeline advance` once its flow has run; repeatable")
    _target_args(create, "every device (the default)")
    update = what.add_parser("update", help="change a pipeline's name, description, steps or targets")
    update.add_argument("pipeline")
    update.add_argument("--name")
    update.add_argument("--description", help="the new description ('' clears it)")
    update.add_argument("--flows", nargs="+", metavar="FLOW", help="the new steps: flow ids, in the order they run")
    policy = update.add_mutually_exclusive_group()
    policy.add_argument("--continue-on-failure", action="store_true", help="every step: a failure does not stop the run")
    policy.add_argument("--stop-on-failure", action="store_true", help="every step: a failure stops the run")
    update.add_argument("--manual", type=int, action="append", default=None, metavar="N",
                        help="step N (from 1) waits for `pipeline advance`; the others no longer do; repeatable")
    _target_args(update, "every device")
    ls = what.add_parser("list", help="pipelines with their run counters")
    run = what.add_parser("run", help="start a run and follow it step by step")
    run.add_argument("pipeline")
    run.add_argument("--no-wait", action="store_true", help="start and return at once")
    run.add_argument("--interval", type=float, default=0.5)
    show = what.add_parser("show", help="a pipeline with its runs, or one run with its steps")
    show.add_argument("pipeline")
    show.add_argument("run", nargs="?")
    cancel = what.add_parser("cancel", help="cancel a run")
    cancel.add_argument("pipeline")
    cancel.add_argument("run")
    advance = what.add_parser("advance", help="end a run's current step by hand (Step Done / Step Failed)")
    advance.add_argument("pipeline")
    advance.add_argument("run")
    verdict = advance.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--done", action="store_true", help="the step succeeded: the run goes on")
    verdict.add_argument("--failed", action="store_true", help="the step failed (on_failure applies)")
    for q, func in ((create, _create), (update, _update), (ls, _list), (run, _run), (show, _show), (cancel, _cancel),
                    (advance, _advance)):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print the API's answer as JSON")
        q.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _target_args(parser, all_help: str) -> None:
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument("--devices", help="comma-separated device ids")
    targets.add_argument("--tag", help="every device with this tag")
    targets.add_argument("--environment", help="every device in this environment")
    targets.add_argument("--all", action="store_true", help=all_help)


def _targets(args) -> dict | None:
    """The targets the options name, or None when they name none."""
    if args.devices:
        return {"target_devices": [d.strip() for d in args.devices.split(",") if d.strip()]}
    if args.tag:
        return {"target_tags": [args.tag]}
    if args.environment:
        return {"environment": args.environment}
    return {"all": True} if args.all else None


def pipeline_body(args) -> dict:
    """The POST /pipelines body from the command line (pure)."""
    on_failure = "continue" if args.continue_on_failure else "stop"
    body = {"name": args.name, "targets": _targets(args) or {"all": True},
            "steps": [{"flow_id": f, "on_failure": on_failure, **({"manual": True} if i in args.manual else {})}
                      for i, f in enumerate(args.flows, 1)]}
    if args.description:
        body["description"] = args.description
    return body


def update_body(args, current: dict | None) -> dict:
    """The PATCH /pipelines/{id} body from the command line (pure): only
    what the options change. `current` (the pipeline as it is) is needed
    when step options come without --flows."""
    body: dict = {}
    if args.name is not None:
        body["name"] = args.name
    if args.description is not None:
        body["description"] = args.description or None
    if (targets := _targets(args)) is not None:
        body["targets"] = targets
    policy = "continue" if args.continue_on_failure else "stop" if args.stop_on_failure else None
    if args.flows or policy or args.manual is not None:
        old = [] if args.flows else (current or {}).get("steps", [])
        flows = args.flows or [s["flow_id"] for s in old]
        steps = []
        for n, flow in enumerate(flows, 1):
            was = old[n - 1] if old else {}
            manual = (n in args.manual) if args.manual is not None else bool(was.get("manual"))
            steps.append({"flow_id": flow, "on_failure": policy or was.get("on_failure", "stop"), "manual": manual})
        body["steps"] = steps
    return body


def step_rows(run: dict) -> list[list]:
    return [[s.get("step_index", i) + 1, s.get("flow_id"), s.get("flow_name"),
             s.get("status") + (" (waits for pipeline advance)" if s.get("waiting") else ""),
             s.get("execution_id"), s.get("error")] for i, s in enumerate(run.get("steps_snapshot") or [])]


STEP_COLUMNS = ("step", "flow", "name", "status", "execution", "error")


def run_line(run: dict) -> str:
    steps = run.get("steps_snapshot") or []
    current = run.get("current_step")
    where = f"  step {current + 1}/{len(steps)}" if isinstance(current, int) and steps else ""
    return f"pipeline run {run.get('id')} of {run.get('pipeline_id')}  {run.get('status')}{where}"


def view(run: dict):
    return Group(Text(run_line(run)), ui.table(STEP_COLUMNS, step_rows(run)))


def lines(run: dict) -> list[str]:
    return [run_line(run)] + [f"  step {n} {flow}: {status}" + (f": {err}" if err else "")
                              for n, flow, _name, status, _exe, err in step_rows(run)]


def _create(args) -> int:
    if len(args.flows) < 2:
        print("pipeline: a pipeline runs two or more flows; name at least two", file=sys.stderr)
        return 2
    if bad := [n for n in args.manual if not 1 <= n <= len(args.flows)]:
        print(f"pipeline: --manual {bad[0]}: there are steps 1 to {len(args.flows)}", file=sys.stderr)
        return 2
    pl = client_mod.call(args, "pipeline", lambda api: api.post("/pipelines", pipeline_body(args)))
    if pl is None:
        return 1
    if args.json:
        ui.print_json(pl)
    else:
        print(f"created pipeline {pl['id']} ({pl['name']}): " + " -> ".join(s["flow_id"] for s in pl["steps"]))
    return 0


def _update(args) -> int:
    steps = len(args.flows) if args.flows else None
    if steps is not None and steps < 2:
        print("pipeline: a pipeline runs two or more flows; name at least two", file=sys.stderr)
        return 2

    def change(api):
        current = None if args.flows else api.get(f"/pipelines/{args.pipeline}")
        n = steps if current is None else len(current["steps"])
        if bad := [m for m in args.manual or [] if not 1 <= m <= n]:
            raise ValueError(f"--manual {bad[0]}: there are steps 1 to {n}")
        body = update_body(args, current)
        if not body:
            raise ValueError("nothing to change: give --name, --description, --flows, a step option or targets")
        return api.request("PATCH", f"/pipelines/{args.pipeline}", body)

    try:
        pl = client_mod.call(args, "pipeline", change)
    except ValueError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    if pl is None:
        return 1
    if args.json:
        ui.print_json(pl)
    else:
        print(f"updated pipeline {pl['id']} ({pl['name']}): " + " -> ".join(
            s["flow_id"] + (" (continue on failure)" if s["on_failure"] == "continue" else "")
            + (" (manual)" if s.get("manual") else "") for s in pl["steps"]))
    return 0


def _list(args) -> int:
    pls = client_mod.call(args, "pipeline", lambda api: api.get_all("/pipelines", "pipelines"))
    if pls is None:
        return 1
    if args.json:
        ui.print_json(pls)
        return 0
    ui.print_table(("id", "name", "steps", "runs", "completed", "failed", "running", "last used"),
                   [[p["id"], p["name"], len(p["steps"]), p["runs"]["total"], p["runs"]["completed"],
                     p["runs"]["failed"], p["runs"]["running"], p.get("last_used_at")] for p in pls],
                   empty="no pipelines")
    return 0


def _run(args) -> int:
    api = client_mod.from_args(args)
    out = sys.stderr if args.json else sys.stdout
    try:
        run = api.post(f"/pipelines/{args.pipeline}/runs")
        print(f"started pipeline run {run['id']}: {api.api_url(f'/pipelines/{args.pipeline}/runs/' + run['id'])}",
              file=out)
        if not args.no_wait:
            run = follow(lambda: api.get(f"/pipelines/{args.pipeline}/runs/{run['id']}"), view, lines,
                         lambda doc: doc.get("status") in FINISHED, out=out, interval_s=args.interval)
    except client_mod.ApiError as exc:
        client_mod.print_error(exc, "pipeline")
        return 1
    if args.json:
        ui.print_json(run)
    return 0 if args.no_wait or run.get("status") == "completed" else 1


def _show(args) -> int:
    if args.run:
        run = client_mod.call(args, "pipeline", lambda api: api.get(f"/pipelines/{args.pipeline}/runs/{args.run}"))
        if run is None:
            return 1
        if args.json:
            ui.print_json(run)
        else:
            ui.console().print(view(run))
        return 0

    def fetch(api):
        return api.get(f"/pipelines/{args.pipeline}"), api.get(f"/pipelines/{args.pipeline}/runs", limit=20)["runs"]

    got = client_mod.call(args, "pipeline", fetch)
    if got is None:
        return 1
    pl, runs = got
    if args.json:
        ui.print_json({**pl, "recent_runs": runs})
        return 0
    con = ui.console()
    con.print(ui.panel(f"pipeline {pl['id']}", [
        ("name", pl["name"]), ("description", pl.get("description")),
        ("steps", " -> ".join(f"{s['flow_id']} ({s['on_failure']} on failure)" for s in pl["steps"])),
        ("targets", _targets_text(pl.get("targets") or {})), ("used", pl.get("use_count")),
        ("last used", pl.get("last_used_at")), ("created", pl.get("created_at"))]))
    ui.print_table(("run", "status", "step", "started", "completed", "by"),
                   [[r["id"], r["status"], (r["current_step"] + 1) if isinstance(r.get("current_step"), int) else None,
                     r.get("started_at"), r.get("completed_at"), r.get("triggered_by")] for r in runs],
                   empty="no runs yet")
    return 0


def _targets_text(t: dict) -> str:
    if t.get("all"):
        return "every device"
    if t.get("target_devices"):
        return "devices " + ", ".join(t["target_devices"])
    if t.get("target_tags"):
        return "tags " + ", ".join(t["target_tags"])
    return f"environment {t.get('environment')}"


def _cancel(args) -> int:
    run = client_mod.call(args, "pipeline",
                          lambda api: api.post(f"/pipelines/{args.pipeline}/runs/{args.run}/cancel"))
    if run is None:
        return 1
    if args.json:
        ui.print_json(run)
    else:
        print(f"pipeline run {args.run}: {run.get('status')}")
    return 0


def _advance(args) -> int:
    run = client_mod.call(args, "pipeline", lambda api: api.post(f"/pipelines/{args.pipeline}/runs/{args.run}/advance",
                                                                 {"success": bool(args.done)}))
    if run is None:
        return 1
    if args.json:
        ui.print_json(run)
    else:
        print("\n".join(lines(run)))
    return 0

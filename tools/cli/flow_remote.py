"""`fleetflow flow create|update|publish|list`: flows in the cloud, over the API.

(`flow validate|compile|diff` work on files, offline: tools/cli/cmd_flow.py.)

    fleetflow flow create examples/temperature-alert.json     # a draft; prints its id
    fleetflow flow update FLOW_ID FILE                          # drafts only
    fleetflow flow publish FLOW_ID                              # a new immutable version
    fleetflow flow restore FLOW_ID V [--draft]                  # v's content as the next version
    fleetflow flow list [--status published]
    fleetflow flow show FLOW_ID [--version V]                  # the flow (or one version): nodes, wiring, variables
    fleetflow flow versions FLOW_ID                             # every published version
    fleetflow flow diff FLOW_ID V1 V2                           # two versions, node by node (tools/cli/cmd_flow.py)
"""

from __future__ import annotations

import json
from pathlib import Path

from shared_schema.jsontext import JSONTextError, loads
from tools.cli import client as client_mod
from tools.cli import ui


def register_remote(what) -> None:
    """Add the API subcommands to `fleetflow flow`'s subparsers."""
    c = what.add_parser("create", help="create a draft flow in the cloud from a JSON file")
    c.add_argument("file", type=Path, help="flow JSON: {name, description, tags, definition} or {name, steps}")
    c.add_argument("--name", help="override the file's name")
    c.set_defaults(func=_create)
    u = what.add_parser("update", help="replace a draft flow's definition from a JSON file")
    u.add_argument("flow")
    u.add_argument("file", type=Path)
    u.set_defaults(func=_update)
    p = what.add_parser("publish", help="validate fully and publish a new version")
    p.add_argument("flow")
    p.set_defaults(func=_publish)
    r = what.add_parser("restore", help="publish a copy of an earlier version as the next one (history is kept)")
    r.add_argument("flow")
    r.add_argument("version", type=int, help="the version to restore")
    r.add_argument("--draft", action="store_true",
                   help="only make that version's content the draft, to edit before publishing")
    r.set_defaults(func=_restore)
    ls = what.add_parser("list", help="flows in the cloud")
    ls.add_argument("--status", choices=("draft", "published", "archived"))
    ls.set_defaults(func=_list)
    show = what.add_parser("show", help="a flow in the cloud (or one of its versions): nodes, wiring, variables")
    show.add_argument("flow")
    show.add_argument("--version", type=int, help="a published version (default: the flow as it is now)")
    show.set_defaults(func=_show)
    vs = what.add_parser("versions", help="a flow's published versions")
    vs.add_argument("flow")
    vs.set_defaults(func=_versions)
    for q in (c, u, p, r, ls, show, vs):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print the API's answer as one JSON object")


def _load(path: Path) -> dict:
    """The flow object in a file; exits 1 naming the file, line and column
    when it is not strict JSON (NaN included) or not an object."""
    try:
        body = loads(path.read_bytes())
    except OSError as exc:
        raise SystemExit(f"flow: cannot read {path}: {exc.strerror or exc}") from None
    except JSONTextError as exc:
        raise SystemExit(f"flow: {path}:{exc.line}:{exc.column}: malformed JSON: {exc.message}") from None
    if not isinstance(body, dict):
        raise SystemExit(f"flow: {path}: a flow is a JSON object with 'definition' or 'steps'")
    return body


def _call(args, fn):
    return client_mod.call(args, "flow", fn)


def _create(args) -> int:
    body = _load(args.file)
    if args.name:
        body["name"] = args.name
    flow = _call(args, lambda api: api.create_flow(body))
    if flow is None:
        return 1
    print(json.dumps(flow, sort_keys=True) if args.json else f"created draft flow {flow.get('id')} ({flow.get('name')})")
    return 0


def _update(args) -> int:
    flow = _call(args, lambda api: api.update_flow(args.flow, _load(args.file)))
    if flow is None:
        return 1
    print(json.dumps(flow, sort_keys=True) if args.json else f"updated draft flow {args.flow}")
    return 0


def _publish(args) -> int:
    flow = _call(args, lambda api: api.publish_flow(args.flow))
    if flow is None:
        return 1
    print(json.dumps(flow, sort_keys=True) if args.json
          else f"published flow {args.flow} version {flow.get('version')}")
    return 0


def _restore(args) -> int:
    got = _call(args, lambda api: api.restore_version(args.flow, args.version, publish=not args.draft))
    if got is None:
        return 1
    if args.json:
        print(json.dumps(got, sort_keys=True))
    elif args.draft:
        print(f"flow {args.flow} is a draft holding version {args.version}'s content; publish it to make a version")
    else:
        print(f"restored flow {args.flow} version {args.version} as version {got.get('version')}")
    return 0


def _list(args) -> int:
    flows = _call(args, lambda api: api.list_flows(status=args.status))
    if flows is None:
        return 1
    if args.json:
        print(json.dumps(flows, sort_keys=True))
        return 0
    print(f"{'ID':22}  {'STATUS':10}  {'VER':>3}  NAME")
    for f in flows:
        ver = f.get("version")
        print(f"{str(f.get('id')):22}  {str(f.get('status')):10}  {'' if ver is None else ver:>3}  {f.get('name', '')}")
    return 0


def definition_tables(body: dict) -> list:
    """Tables of a flow body's nodes, connections and variables (graph form) or steps (step form)."""
    definition = body.get("definition") or {}
    out = []
    if definition.get("nodes"):
        out.append(ui.table(("node", "type", "name", "config"),
                            [[n.get("id"), n.get("type"), n.get("name"), n.get("config")] for n in definition["nodes"]],
                            title="nodes"))
    if definition.get("connections"):
        out.append(ui.table(("from", "port", "to"),
                            [[c.get("source"), c.get("port", 0), c.get("target")] for c in definition["connections"]],
                            title="connections"))
    variables = definition.get("variables") or body.get("variables") or []
    if variables:
        out.append(ui.table(("variable", "type", "value"),
                            [[v.get("name"), v.get("type"), v.get("value")] for v in variables], title="variables"))
    if body.get("steps"):
        out.append(ui.table(("step", "node", "params"),
                            [[i + 1, s.get("node"), s.get("params")] for i, s in enumerate(body["steps"])],
                            title="steps"))
    return out


def _show(args) -> int:
    path = f"/flows/{args.flow}" + (f"/versions/{args.version}" if args.version else "")
    doc = _call(args, lambda api: api.get(path))
    if doc is None:
        return 1
    if args.json:
        ui.print_json(doc)
        return 0
    con = ui.console()
    title = f"flow {args.flow}" + (f" version {args.version}" if args.version else "")
    con.print(ui.panel(title, [
        ("name", doc.get("name")), ("description", doc.get("description")), ("status", doc.get("status")),
        ("version", doc.get("version")), ("tags", doc.get("tags") or None), ("boards", doc.get("boards")),
        ("node types", doc.get("types")), ("restored from", doc.get("restored_from")),
        ("created", doc.get("created_at")), ("updated", doc.get("updated_at"))]))
    body = doc.get("body") or doc
    for t in definition_tables(body):
        con.print(t)
    return 0


def _versions(args) -> int:
    got = _call(args, lambda api: {"versions": api.get_all(f"/flows/{args.flow}/versions", "versions")})
    if got is None:
        return 1
    if args.json:
        ui.print_json(got["versions"])
        return 0
    ui.print_table(("version", "name", "boards", "node types", "restored from", "published"),
                   [[v["version"], v.get("name"), v.get("boards"), v.get("types"), v.get("restored_from"),
                     v.get("created_at")] for v in got["versions"]],
                   empty=f"flow {args.flow} has no published version yet: `fleetflow flow publish {args.flow}`")
    return 0

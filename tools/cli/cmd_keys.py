"""`fleetflow keys`: API keys, straight in the database (no server needed).

    fleetflow keys create --role admin [--name NAME] [--db URL]
    fleetflow keys list [--db URL | --cloud URL]
    fleetflow keys revoke ID [--db URL]

`create` prints the key once; only its hash is stored. `list --cloud URL`
asks a running cloud instead (an admin key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tools.cli import ui
from tools.cli.cmd_serve import DEFAULT_DB


def register(sub) -> None:
    p = sub.add_parser("keys", help="create, list and revoke API keys",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="keys_cmd", metavar="ACTION")
    create = what.add_parser("create", help="make a key and print it (once)")
    create.add_argument("--role", required=True, choices=("admin", "operator", "viewer"))
    create.add_argument("--name", default="")
    create.add_argument("--json", action="store_true")
    ls = what.add_parser("list", help="keys with their role (never the key itself)")
    revoke = what.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("id", type=int)
    for q in (create, ls, revoke):
        q.add_argument("--db", default=os.environ.get("FLEETFLOW_DB_URL", DEFAULT_DB))
    ls.add_argument("--cloud", metavar="URL", help="list a running cloud's keys over its API instead")
    ls.add_argument("--api-key", help="an admin API key for --cloud (env FLEETFLOW_API_KEY)")
    ls.add_argument("--json", action="store_true")
    create.set_defaults(func=_create)
    ls.set_defaults(func=_list)
    revoke.set_defaults(func=_revoke)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def open_database(url: str, command: str = "keys"):
    """The database, migrated (cloud.admin); SystemExit with a one-line
    reason when it cannot be (`fleetflow users` opens it the same way)."""
    from cloud import admin

    try:
        return admin.open_database(url)
    except admin.AdminError as exc:
        raise SystemExit(f"{command}: {exc}") from None


def _create(args) -> int:
    with open_database(args.db) as db:
        made = db.create_key(args.role, args.name)
    if args.json:
        print(json.dumps(made, sort_keys=True))
    else:
        print(made["key"])
    return 0


def _list(args) -> int:
    if args.cloud:
        from tools.cli import client as client_mod

        got = client_mod.call(args, "keys", lambda api: {"keys": api.get_all("/keys", "keys")})
        if got is None:
            return 1
        found, where = got["keys"], args.cloud
    else:
        with open_database(args.db) as db:
            found = db.list_keys()
        where = args.db
    if args.json:
        ui.print_json(found)
        return 0
    ui.print_table(("id", "role", "prefix", "revoked", "created", "name"),
                   [[k["id"], k["role"], k["prefix"] + "...", k["revoked"], k.get("created_at"), k["name"]]
                    for k in found],
                   empty=f"no API keys in {where}: make one with `fleetflow keys create --role admin`")
    return 0


def _revoke(args) -> int:
    from cloud.admin import AdminError

    try:
        with open_database(args.db) as db:
            db.revoke_key(args.id)
    except AdminError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    print(f"revoked key {args.id}")
    return 0

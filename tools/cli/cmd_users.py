"""`fleetflow users`: dashboard users, straight in the database (no server
needed): the way to make the first admin on a headless box.

    fleetflow users create --email ada@example.com --role admin [--password-stdin] [--db URL]
    fleetflow users list [--db URL]
    fleetflow users password --email ada@example.com [--password-stdin] [--db URL]

`create` asks for the password twice (or reads one line from stdin with
--password-stdin, for scripts); only its bcrypt hash is stored. Once a user
exists, registering from the dashboard is closed and admins add users there.
`password` sets a user's password without the old one (a locked-out admin,
a forgotten password) and logs that user out everywhere.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from tools.cli.cmd_keys import open_database
from tools.cli.cmd_serve import DEFAULT_DB


def register(sub) -> None:
    p = sub.add_parser("users", help="create and list dashboard users, set a password",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="users_cmd", metavar="ACTION")
    create = what.add_parser("create", help="make a user (the password is asked for)")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=("admin", "operator", "viewer"))
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin instead of asking")
    ls = what.add_parser("list", help="users with their role")
    pw = what.add_parser("password", help="set a user's password (the new one is asked for); logs them out")
    pw.add_argument("--email", required=True)
    pw.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin instead of asking")
    for q in (create, ls, pw):
        q.add_argument("--db", default=os.environ.get("FLEETFLOW_DB_URL", DEFAULT_DB))
    create.set_defaults(func=_create)
    ls.set_defaults(func=_list)
    pw.set_defaults(func=_set_password)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _password(from_stdin: bool, nothing_done: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise SystemExit(f"users: the two passwords differ; {nothing_done}")
    return first


def _create(args) -> int:
    from cloud.admin import AdminError, check_email

    try:
        check_email(args.email)  # before asking for a password
        password = _password(args.password_stdin, "nothing was created")
        with open_database(args.db, "users") as db:
            made = db.create_user(args.email, password, args.role)
    except AdminError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return 1
    print(f"created {made['role']} {made['email']} (id {made['id']})")
    return 0


def _list(args) -> int:
    with open_database(args.db, "users") as db:
        rows = db.list_users()
    for u in rows:
        print(f"{u['id']:>4}  {u['role']:<8}  {u['created_at']}  {u['email']}")
    return 0


def _set_password(args) -> int:
    from cloud.admin import AdminError, check_email

    try:
        email = check_email(args.email)
        with open_database(args.db, "users") as db:
            if not db.has_user(email):  # before asking for a password
                raise AdminError(f"no user has the email {email}")
            password = _password(args.password_stdin, "the password is unchanged")
            user = db.set_password(email, password)
    except AdminError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return 1
    print(f"new password set for {user['role']} {user['email']}; their sessions are ended")
    return 0

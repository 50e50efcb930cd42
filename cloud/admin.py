"""Local database work without a running cloud: the tools' one way into it.

    with admin.open_database("sqlite:///var/fleetflow.db") as db:   # opened and migrated
        made = db.create_key("admin", "ci")      # {"id", "name", "role", "prefix", "created_at", "revoked", "key"}
        db.list_keys()                           # [{...}, ...] every key, oldest first (never the key itself)
        db.revoke_key(made["id"])
        db.create_user("ann@example.com", b"a long password", "admin")
        db.list_users()

`fleetflow keys`, `fleetflow users` and the tools' local stacks use this and
nothing else of the cloud's storage (cloud.db, cloud.migrations,
cloud.store, cloud.models are the cloud's own and change with it);
everything else the tools do with a cloud goes through its HTTP API. Every
failure is an `AdminError` whose message says what is wrong in words a
command can print as it is: "cannot open the database 'x://y': ...",
"no API key 7", "/email: not an email address".
"""

from __future__ import annotations

import os
import time

import peewee

from cloud import migrations, sessions
from cloud.db import open_database as _open_peewee
from cloud.errors import FleetflowError
from cloud.store import keys as _keys
from cloud.store import users as _users

ROLES = _keys.ROLES
DB_SCHEMES = ("sqlite", "postgres", "postgresql")


class AdminError(Exception):
    """Bad input or a database that cannot be used; the message says which."""


def check_db_url(url: str, what: str = "--db") -> None:
    """AdminError unless `url` names a database the cloud can open."""
    from urllib.parse import urlparse

    scheme = urlparse(url).scheme if "://" in url else "sqlite"
    if scheme not in DB_SCHEMES:
        raise AdminError(f"{what} {url!r}: want sqlite:///path/to.db, a bare path, or postgresql://user:pw@host/db")


def check_email(email: str, what: str = "--email") -> str:
    """The email as the API would store it; AdminError when it is not one
    (a command checks it before asking for a password)."""
    try:
        return sessions.checked_email(email, what)
    except FleetflowError as exc:
        raise AdminError(_why(exc)) from None


def _why(exc: FleetflowError) -> str:
    return "; ".join(f"{p.pointer}: {p.message}" for p in exc.problems) or exc.detail


class LocalDatabase:
    """A cloud database opened here, migrated to this code's schema."""

    def __init__(self, url: str | os.PathLike):
        self.url = url = str(url)
        try:
            check_db_url(url)
            self._db = _open_peewee(url)
            self._db.connect(reuse_if_open=True)
            migrations.migrate(self._db)
        except AdminError as exc:
            raise AdminError(f"cannot open the database {url!r}: {exc}") from None
        except (peewee.DatabaseError, OSError) as exc:
            raise AdminError(f"cannot open the database {url!r}: {exc}") from None

    def _call(self, fn, *args):
        try:
            with self._db.atomic():
                return fn(*args)
        except FleetflowError as exc:
            raise AdminError(_why(exc)) from None

    def _all(self, list_fn) -> list[dict]:
        found, cursor = self._call(list_fn)
        while cursor:
            more, cursor = self._call(list_fn, 1000, cursor)
            found += more
        return found

    def create_key(self, role: str, name: str = "") -> dict:
        """A new API key; its token is in the answer ("key") and nowhere else."""
        return self._call(_keys.create_key, role, name)

    def list_keys(self) -> list[dict]:
        return self._all(_keys.list_keys)

    def revoke_key(self, key_id: int) -> dict:
        return self._call(_keys.revoke_key, key_id)

    def create_user(self, email: str, password: str | bytes, role: str) -> dict:
        """A dashboard user; the email and password are checked as the
        API checks them, the password stored as a bcrypt hash."""
        email = check_email(email)
        try:
            password = sessions.checked_password(password, "the password")
        except FleetflowError as exc:
            raise AdminError(_why(exc)) from None
        return self._call(_users.create_user, email, sessions.hash_password(password), role, time.time())

    def list_users(self) -> list[dict]:
        return self._all(_users.list_users)

    def set_password(self, email: str, password: str | bytes) -> dict:
        """A user's new password, set without the old one (an admin locked
        out, a forgotten password on a headless box); it ends the user's
        sessions, as a change from the dashboard does."""
        email = check_email(email)
        try:
            password = sessions.checked_password(password, "the password")
        except FleetflowError as exc:
            raise AdminError(_why(exc)) from None
        return self._call(_users.update_user, self._user_id(email), None, sessions.hash_password(password))

    def has_user(self, email: str) -> bool:
        return self._call(_users.password_hash_of, check_email(email)) is not None

    def _user_id(self, email: str) -> int:
        found = self._call(_users.password_hash_of, email)
        if found is None:
            raise AdminError(f"no user has the email {email}")
        return found[0]

    def close(self) -> None:
        if not self._db.is_closed():
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_database(url: str | os.PathLike) -> LocalDatabase:
    """The database at `url` (sqlite:///path, a bare path, postgresql://...),
    migrated; AdminError with a one-line reason when it cannot be."""
    return LocalDatabase(url)

"""Users and their sessions (the rules: cloud.sessions). Passwords arrive
here already hashed: bcrypt costs ~0.25 s of CPU, which the views spend off
the event loop and off the database thread."""

from __future__ import annotations

from typing import NamedTuple

import peewee

from cloud import secrets, sessions
from cloud.db import get_or_404
from cloud.errors import Conflict, Forbidden, Invalid, Problem, Unauthorized
from cloud.models import Session, User
from cloud.store import paging
from cloud.store.keys import ROLES
from cloud.timefmt import iso


class Login(NamedTuple):
    """Who a session token belongs to, and until when it works."""

    user_id: int
    email: str
    role: str
    expires_at: float
    refresh_until: float
    logged_in_at: float


def user_doc(row: User) -> dict:
    return {"id": row.id, "email": row.email, "role": row.role, "created_at": iso(row.created_at)}


def _checked_role(role) -> str:
    if role not in ROLES:
        raise Invalid("unknown role", [Problem("/role", f"{role!r} is not one of {', '.join(ROLES)}")])
    return role


def has_users() -> bool:
    return User.select().exists()


def _lock_users() -> None:
    """Two first registrations at once (two replicas on one PostgreSQL) must
    not both see an empty table; SQLite has one writer at a time already."""
    db = User._meta.database.obj
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("LOCK TABLE account IN SHARE ROW EXCLUSIVE MODE")


def register_first(email: str, password_hash: str, now: float) -> dict:
    """The first user, an admin; Forbidden once anyone exists."""
    _lock_users()
    if has_users():
        raise Forbidden("registration is closed: ask an admin")
    return user_doc(User.create(email=email, password_hash=password_hash, role="admin", created_at=now))


def create_user(email: str, password_hash: str, role: str, now: float) -> dict:
    """A user made by an admin (or by `fleetflow users create`)."""
    _checked_role(role)
    _lock_users()
    if User.select().where(User.email == email).exists():
        raise Conflict(f"a user with email {email} already exists")
    return user_doc(User.create(email=email, password_hash=password_hash, role=role, created_at=now))


def list_users(limit: int = paging.DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    got = paging.page(User.select(), "users", (User.id,), limit, cursor)
    return [user_doc(u) for u in got.rows], got.cursor


def _get(user_id: int) -> User:
    return get_or_404(User, user_id, "user")


def get_user(user_id: int) -> dict:
    return user_doc(_get(user_id))


def _other_admins(user: User) -> bool:
    return User.select().where((User.role == "admin") & (User.id != user.id)).exists()


def update_user(user_id: int, role: str | None = None, password_hash: str | None = None) -> dict:
    """A new role and/or password; a new password ends the user's sessions."""
    user = _get(user_id)
    if role is not None:
        _checked_role(role)
        if user.role == "admin" and role != "admin" and not _other_admins(user):
            raise Conflict(f"{user.email} is the last admin: make another admin first")
        user.role = role
    if password_hash is not None:
        user.password_hash = password_hash
        Session.delete().where(Session.user == user.id).execute()
    user.save()
    return user_doc(user)


def change_own_password(user_id: int, password_hash: str, keep_token: str) -> dict:
    """A user's new password: every other session of theirs ends, the one
    that asked (`keep_token`) goes on."""
    user = _get(user_id)
    user.password_hash = password_hash
    user.save()
    Session.delete().where((Session.user == user.id)
                           & (Session.token_hash != secrets.hash_token(keep_token))).execute()
    return user_doc(user)


def delete_user(user_id: int) -> None:
    user = _get(user_id)
    if user.role == "admin" and not _other_admins(user):
        raise Conflict(f"{user.email} is the last admin: make another admin first")
    Session.delete().where(Session.user == user.id).execute()
    user.delete_instance()


def password_hash_of(email: str) -> tuple[int, str] | None:
    """(id, password hash) of the user with this email, for a login."""
    row = User.select(User.id, User.password_hash).where(User.email == email).first()
    return None if row is None else (row.id, row.password_hash)


def start_session(user_id: int, token: str, now: float,
                  logged_in_at: float | None = None) -> tuple[dict, sessions.Times]:
    """A session for `token` (rules 2 and 4); returns (user document, its
    times). Sessions past refreshing are swept on the way."""
    Session.delete().where(Session.refresh_until <= now).execute()
    user = _get(user_id)
    times = sessions.new_times(now, logged_in_at)
    Session.create(token_hash=secrets.hash_token(token), user=user.id, logged_in_at=times.logged_in_at,
                   expires_at=times.expires_at, refresh_until=times.refresh_until)
    return user_doc(user), times


def login_of(token: str) -> Login | None:
    """The session a token opens, with its user (rule 6), or None."""
    row = (Session.select(Session, User.email, User.role)
           .join(User, on=(User.id == Session.user))
           .where(Session.token_hash == secrets.hash_token(token)).objects().first())
    if row is None:
        return None
    return Login(row.user, row.email, row.role, row.expires_at, row.refresh_until, row.logged_in_at)


def refresh_session(token: str, new_token: str, now: float) -> tuple[dict, sessions.Times]:
    """Rule 4: `token` stops working and `new_token` takes over, with the same login time."""
    row = Session.get_or_none(Session.token_hash == secrets.hash_token(token))
    if row is None or sessions.state(row.expires_at, row.refresh_until, now) == "dead":
        raise Unauthorized("this session can no longer be refreshed (7 days after logging in): log in again")
    row.delete_instance()
    return start_session(row.user, new_token, now, row.logged_in_at)


def end_session(token: str) -> None:
    Session.delete().where(Session.token_hash == secrets.hash_token(token)).execute()

"""Dashboard sessions and passwords: the rules, with no I/O (seed 002:
"JWT generated (24h expiry) ... Token refresh available via POST
/auth/refresh (max 7 days)"; ours are random tokens, not JWTs, so logout and
a deleted user take effect at once).

Rules:
1. A password is 8 to 72 bytes of UTF-8 (72: bcrypt reads no further, and
   a longer one would be cut without a word); it is stored as a bcrypt hash
   of cost 12 (`Config.password_cost`).
2. Logging in makes a session: a random token (shown once, stored as its
   sha256) that works for ACCESS_S (24 h) and may be refreshed until
   REFRESH_S (7 days) after the login, never beyond.
3. A session is `active` before `expires_at`, then `refreshable` until
   `refresh_until`, then `dead`. Only /auth/refresh and /auth/logout take a
   refreshable session; every other request needs an active one.
4. Refreshing replaces the token (the old one stops working) and keeps the
   login time: the new one expires at min(now + ACCESS_S, refresh_until).
5. The browser holds the token in an HttpOnly cookie; a request that changes
   something (not GET/HEAD/OPTIONS) and is authenticated by that cookie must
   carry X-CSRF-Token equal to the `ff_csrf` cookie and to the session's own
   CSRF token (HMAC of the session token under a key derived from the server
   secret: a cookie planted by another site does not match). A Bearer token
   or an API key is sent by a script on purpose: no CSRF check.
6. A user's role is read with the session on every request: a demoted or
   deleted user loses the rights at once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

import bcrypt

from cloud.errors import Invalid, Problem

ACCESS_S = 24 * 3600.0
REFRESH_S = 7 * 24 * 3600.0
PASSWORD_COST = 12
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 72
TOKEN_PREFIX = "ffs_"  # tells a session token from an API key (ffk_) in a Bearer header
SESSION_COOKIE = "ff_session"
CSRF_COOKIE = "ff_csrf"
CSRF_HEADER = "X-CSRF-Token"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
EMAIL_MAX = 254


@dataclass(frozen=True)
class Times:
    """When a session stops working, and when it can no longer be refreshed."""

    logged_in_at: float
    expires_at: float
    refresh_until: float


def new_times(now: float, logged_in_at: float | None = None) -> Times:
    """Rules 2 and 4: a login (logged_in_at None) or a refresh of one."""
    login = now if logged_in_at is None else logged_in_at
    until = login + REFRESH_S
    return Times(login, min(now + ACCESS_S, until), until)


def state(expires_at: float, refresh_until: float, now: float) -> str:
    """Rule 3: active, refreshable or dead."""
    if now < expires_at:
        return "active"
    if now < refresh_until:
        return "refreshable"
    return "dead"


def csrf_token(secret: bytes, session_token: str) -> str:
    """Rule 5: the CSRF token that belongs to a session."""
    key = hmac.new(secret, b"fleetflow csrf v1", hashlib.sha256).digest()
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session_token: str, cookie: str | None, header: str | None) -> bool:
    if not cookie or not header:
        return False
    expected = csrf_token(secret, session_token)
    return hmac.compare_digest(header, cookie) and hmac.compare_digest(header, expected)


def checked_email(raw, pointer: str = "/email") -> str:
    """The address, trimmed and lower-cased; Invalid naming `pointer` otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("an email address is required", [Problem(pointer, "required: an address like ada@example.com")])
    email = raw.strip().lower()
    if len(email) > EMAIL_MAX or not EMAIL.fullmatch(email):
        raise Invalid("bad email address", [Problem(pointer, f"{raw[:60]!r} is not an address like ada@example.com "
                                                             f"(at most {EMAIL_MAX} characters)")])
    return email


def checked_password(raw, pointer: str = "/password") -> bytes:
    """Rule 1: the password as bytes; Invalid naming `pointer` otherwise."""
    if not isinstance(raw, str):
        raise Invalid("a password is required", [Problem(pointer, "required: a string")])
    data = raw.encode()
    if len(raw) < PASSWORD_MIN_CHARS or len(data) > PASSWORD_MAX_BYTES:
        raise Invalid("bad password", [Problem(pointer, f"must be {PASSWORD_MIN_CHARS} characters to "
                                                        f"{PASSWORD_MAX_BYTES} bytes long (bcrypt reads no further); "
                                                        f"this one is {len(raw)} characters, {len(data)} bytes")])
    return data


def hash_password(password: bytes, cost: int = PASSWORD_COST) -> str:
    """bcrypt; ~0.25 s of CPU at cost 12: callers run it off the event loop."""
    return bcrypt.hashpw(password, bcrypt.gensalt(cost)).decode("ascii")


@functools.lru_cache(maxsize=4)
def _nobody(cost: int) -> bytes:
    """A hash checked when the email is unknown, so a login takes as long
    whether or not the account exists (no user enumeration by timing)."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(cost))


def check_password(password, hashed: str | None, cost: int = PASSWORD_COST) -> bool:
    """True when `password` matches `hashed`; the same bcrypt work when it
    is None (unknown user) or unusable."""
    data = password.encode() if isinstance(password, str) else b""
    usable = 0 < len(data) <= PASSWORD_MAX_BYTES
    target = hashed.encode() if hashed else _nobody(cost)
    matched = bcrypt.checkpw(data if usable else b"-", target)
    return matched and usable and hashed is not None

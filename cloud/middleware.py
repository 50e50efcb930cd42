"""The middlewares: access by role (API keys and user sessions), and domain errors turned
into application/problem+json (RFC 9457) with the field pointers at fault."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

from aiohttp import web

from cloud import secrets, sessions
from cloud.errors import BadRequest, FleetflowError, Forbidden, Invalid, Problem, Unauthorized
from cloud.store import keys as key_store
from cloud.store import users as user_store
from shared_schema.jsontext import JSONTextError, loads

log = logging.getLogger("fleetflow.api")
PROBLEM = "application/problem+json"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
KEY_CACHE_S = 10.0  # a revoked key stops working within this long


ROLE = web.RequestKey("role", str)
KEY_HASH = web.RequestKey("key_hash", str)  # what scopes an Idempotency-Key: the API key's sha256, or the user's


def problem_response(status: int, title: str, detail: str, problems=(), extra: dict | None = None,
                     instance: str | None = None) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance}
    if problems:
        body["errors"] = [p.as_dict() for p in problems]
    for key, value in (extra or {}).items():
        body.setdefault(key, value)  # extras never replace the standard members
    return web.Response(status=status, content_type=PROBLEM, text=json.dumps(body))


@web.middleware
async def problems(request: web.Request, handler):
    try:
        return await handler(request)
    except FleetflowError as exc:
        return problem_response(exc.status, exc.title, exc.detail, exc.problems, exc.extra, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = problem_response(exc.status, exc.reason, exc.text or exc.reason, instance=request.path)
        if "Allow" in exc.headers:  # a 405 says which methods the path takes (RFC 9110 §15.5.6)
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "Internal error", "the server failed; see its log", instance=request.path)


@dataclass(frozen=True)
class Principal:
    """Who sent a request: an API key or a logged-in user."""

    role: str
    by: str  # what triggered_by records: user:<email> or key:<name, else id>
    user_id: int | None = None
    key_id: int | None = None
    session: str | None = None  # the session token, for refresh and logout
    cookie: bool = False  # authenticated by the browser's cookie (so CSRF-checked)


PRINCIPAL = web.RequestKey("principal", Principal)
# The only routes a session past its 24 h takes (cloud.sessions rule 3).
SESSION_ENDS = {"/api/v1/auth/refresh", "/api/v1/auth/logout"}


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def access(db, public: set[str], config):
    """Every /api/v1 route but `public` needs an API key (x-api-key, Bearer
    ffk_...) or a session (Bearer ffs_..., or the ff_session cookie with
    X-CSRF-Token on changes: cloud.sessions); viewers only read; routes
    marked with a `min_role` (cloud.views.common.admin_only) need that role."""
    cache: dict[str, tuple[tuple | None, float]] = {}

    async def key_of(token: str, digest: str) -> tuple | None:
        hit = cache.get(digest)
        now = time.monotonic()
        if hit and hit[1] > now:
            return hit[0]
        found = await db.read(key_store.key_of, token)
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (found, now + KEY_CACHE_S)
        return found

    async def by_key(request: web.Request, token: str) -> Principal:
        digest = secrets.hash_token(token)
        found = await key_of(token, digest)
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        key_id, name, role = found
        request[KEY_HASH] = digest
        return Principal(role, f"key:{name or key_id}", key_id=key_id)

    async def by_session(request: web.Request, token: str, cookie: bool) -> Principal:
        login = await db.read(user_store.login_of, token)
        if login is None:
            raise Unauthorized("unknown or ended session: log in again")
        state = sessions.state(login.expires_at, login.refresh_until, config.clock())
        if state == "dead" or (state == "refreshable" and request.path not in SESSION_ENDS):
            raise Unauthorized("the session expired: POST /api/v1/auth/refresh (until 7 days after logging in) "
                               "or log in again", expired=True)
        if cookie and request.method not in READ_METHODS and not sessions.csrf_ok(
                config.secret, token, request.cookies.get(sessions.CSRF_COOKIE),
                request.headers.get(sessions.CSRF_HEADER)):
            raise Forbidden("missing or wrong X-CSRF-Token: send the ff_csrf cookie's value in it")
        request[KEY_HASH] = secrets.hash_token(f"user:{login.user_id}")
        return Principal(login.role, f"user:{login.email}", user_id=login.user_id, session=token, cookie=cookie)

    async def identify(request: web.Request) -> Principal:
        key = request.headers.get("x-api-key", "").strip()
        if key:
            return await by_key(request, key)
        bearer = _bearer(request)
        if bearer:
            if bearer.startswith(sessions.TOKEN_PREFIX):
                return await by_session(request, bearer, cookie=False)
            return await by_key(request, bearer)
        cookie = request.cookies.get(sessions.SESSION_COOKIE)
        if cookie:
            return await by_session(request, cookie, cookie=True)
        raise Unauthorized("log in, or send an API key in x-api-key or Authorization: Bearer")

    @web.middleware
    async def middleware(request: web.Request, handler):
        if not request.path.startswith("/api/") or request.path in public:
            return await handler(request)
        who = await identify(request)
        needed = getattr(request.match_info.handler, "min_role", None) or ("viewer" if request.method in READ_METHODS else "operator")
        if RANK[who.role] < RANK[needed]:
            raise Forbidden(f"a {who.role} cannot do this; it needs {needed}", role=who.role, needed=needed)
        request[ROLE] = who.role
        request[PRINCIPAL] = who
        return await handler(request)

    return middleware


async def json_body(request: web.Request, default=None):
    """The request's JSON object; an empty body is `default`."""
    if not request.can_read_body:
        if default is not None:
            return default
        raise BadRequest("this request needs a JSON body")
    try:
        # Strict JSON: Python's json takes NaN and Infinity, which are not JSON
        # and which would be stored and echoed back as invalid JSON.
        body = loads(await request.read())
    except JSONTextError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", line=exc.line, column=exc.column) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    problems = [Problem(pointer, why) for pointer, why in unstorable_text(body)]
    if problems:
        raise Invalid("the body holds text no database can store", problems)
    return body


# Text a database refuses: PostgreSQL stores no NUL in text, and a lone
# UTF-16 surrogate (JSON lets "\ud800" through) is not UTF-8 for either
# database. Refused at the door, with the pointer, instead of a 500 from the
# driver; JSON columns would escape both, but one rule for every string is
# simpler to state and to test.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _text_fault(text: str) -> str | None:
    if "\x00" in text:
        return "contains NUL (\\u0000), which cannot be stored"
    if _SURROGATES.search(text):
        return "contains a lone UTF-16 surrogate, which is not valid Unicode text"
    return None


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def unstorable_text(value, pointer: str = ""):
    """(JSON pointer, what is wrong) for every string, key included, that a
    database would refuse."""
    if isinstance(value, str):
        fault = _text_fault(value)
        if fault:
            yield pointer, fault
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = _text_fault(key)
            if fault:
                yield pointer, f"a key {fault}"
                continue
            yield from unstorable_text(item, f"{pointer}/{_pointer_part(key)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unstorable_text(item, f"{pointer}/{i}")


@web.middleware
async def storable_text(request: web.Request, handler):
    """Path and query values a database would refuse (`/devices/a%00b`) are a
    422 naming the parameter, before any view reads them."""
    problems = [Problem(f"{{{name}}}", fault) for name, value in request.match_info.items()
                if (fault := _text_fault(value))]
    problems += [Problem(f"?{name}", fault) for name, value in request.query.items()
                 if (fault := _text_fault(name) or _text_fault(value))]
    if problems:
        raise Invalid("the request holds text no database can store", problems)
    return await handler(request)

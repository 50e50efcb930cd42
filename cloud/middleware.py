"""The two middlewares: API-key access by role, and domain errors turned
into application/problem+json (RFC 9457) with the field pointers at fault."""

from __future__ import annotations

import json
import logging
import re
import time

from aiohttp import web

from cloud import secrets
from cloud.errors import BadRequest, FleetflowError, Forbidden, Invalid, Problem, Unauthorized
from cloud.store import keys as key_store
from shared_schema.jsontext import JSONTextError, loads

log = logging.getLogger("fleetflow.api")
PROBLEM = "application/problem+json"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
KEY_CACHE_S = 10.0  # a revoked key stops working within this long


ROLE = web.RequestKey("role", str)
KEY_HASH = web.RequestKey("key_hash", str)  # sha256 of the request's API key: what scopes an Idempotency-Key


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
        return problem_response(exc.status, exc.reason, exc.text or exc.reason, instance=request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "Internal error", "the server failed; see its log", instance=request.path)


def _token(request: web.Request) -> str | None:
    token = request.headers.get("x-api-key")
    if token:
        return token.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def access(db, public: set[str]):
    """Every /api/v1 route needs a key; viewers only read; routes marked
    admin-only (in `request.match_info.route`'s handler) need an admin."""
    cache: dict[str, tuple[str | None, float]] = {}

    async def role_of(token: str, digest: str) -> str | None:
        hit = cache.get(digest)
        now = time.monotonic()
        if hit and hit[1] > now:
            return hit[0]
        role = await db.read(key_store.role_of, token)
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (role, now + KEY_CACHE_S)
        return role

    @web.middleware
    async def middleware(request: web.Request, handler):
        if not request.path.startswith("/api/") or request.path in public:
            return await handler(request)
        token = _token(request)
        if token is None:
            raise Unauthorized("send an API key in x-api-key or Authorization: Bearer")
        digest = secrets.hash_token(token)
        role = await role_of(token, digest)
        if role is None:
            raise Unauthorized("unknown or revoked API key")
        needed = getattr(request.match_info.handler, "min_role", None) or ("viewer" if request.method in READ_METHODS else "operator")
        if RANK[role] < RANK[needed]:
            raise Forbidden(f"a {role} key cannot do this; it needs {needed}", role=role, needed=needed)
        request[ROLE] = role
        request[KEY_HASH] = digest
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

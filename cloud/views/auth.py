"""Logging in (cloud.sessions has the rules): register the first user,
log in, refresh, log out, who am I, change my password."""

from __future__ import annotations

import asyncio

from aiohttp import web

from cloud import schemas, secrets, sessions
from cloud.appkeys import CONFIG, DB, HASHING
from cloud.errors import BadRequest, Forbidden, Invalid, Problem, Unauthorized
from cloud.middleware import PRINCIPAL, json_body
from cloud.store import users as store
from cloud.timefmt import iso
from cloud.views.common import any_role, ok


async def hashed(request: web.Request, password: bytes) -> str:
    """bcrypt of `password`, in a thread (never on the loop or the database thread)."""
    async with request.app[HASHING]:
        return await asyncio.to_thread(sessions.hash_password, password, request.app[CONFIG].password_cost)


async def _verified(request: web.Request, password: str, hashed_: str | None) -> bool:
    async with request.app[HASHING]:
        return await asyncio.to_thread(sessions.check_password, password, hashed_, request.app[CONFIG].password_cost)


def _session_answer(request: web.Request, token: str, user: dict, times: sessions.Times,
                    status: int) -> web.Response:
    """The body the contract gives (user, csrf_token, times, access_token)
    and the two cookies, kept until the session can no longer be refreshed."""
    config = request.app[CONFIG]
    csrf = sessions.csrf_token(config.secret, token)
    resp = ok({"user": user, "csrf_token": csrf, "expires_at": iso(times.expires_at),
               "refresh_expires_at": iso(times.refresh_until), "access_token": token}, status)
    max_age = max(0, int(times.refresh_until - config.clock()))
    resp.set_cookie(sessions.SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)
    resp.set_cookie(sessions.CSRF_COOKIE, csrf, max_age=max_age, path="/", samesite="Strict", secure=request.secure)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _start(request: web.Request, user_id: int, status: int) -> web.Response:
    token = secrets.new_token(sessions.TOKEN_PREFIX)
    user, times = await request.app[DB].run(store.start_session, user_id, token, request.app[CONFIG].clock())
    return _session_answer(request, token, user, times, status)


async def status(request: web.Request):
    return ok({"has_users": await request.app[DB].read(store.has_users)})


async def register(request: web.Request):
    req = schemas.parse(schemas.Credentials, await json_body(request))
    email, password = sessions.checked_email(req.email), sessions.checked_password(req.password)
    db = request.app[DB]
    if await db.read(store.has_users):  # before spending a bcrypt on it
        raise Forbidden("registration is closed: ask an admin")
    user = await db.run(store.register_first, email, await hashed(request, password), request.app[CONFIG].clock())
    return await _start(request, user["id"], 201)


async def login(request: web.Request):
    req = schemas.parse(schemas.Credentials, await json_body(request))
    found = await request.app[DB].read(store.password_hash_of, req.email.strip().lower())
    if not await _verified(request, req.password, found[1] if found else None):
        raise Unauthorized("wrong email or password")
    return await _start(request, found[0], 200)


def _session_of(request: web.Request) -> str:
    who = request[PRINCIPAL]
    if who.session is None:
        raise BadRequest("an API key is not a session: nothing to refresh or log out (revoke the key instead)")
    return who.session


@any_role
async def refresh(request: web.Request):
    old = _session_of(request)
    token = secrets.new_token(sessions.TOKEN_PREFIX)
    user, times = await request.app[DB].run(store.refresh_session, old, token, request.app[CONFIG].clock())
    return _session_answer(request, token, user, times, 200)


@any_role
async def logout(request: web.Request):
    await request.app[DB].run(store.end_session, _session_of(request))
    resp = web.Response(status=204)
    resp.del_cookie(sessions.SESSION_COOKIE, path="/")
    resp.del_cookie(sessions.CSRF_COOKIE, path="/")
    return resp


async def me(request: web.Request):
    who = request[PRINCIPAL]
    if who.user_id is None:
        return ok({"user": None, "key": {"id": who.key_id, "role": who.role, "by": who.by}})
    db = request.app[DB]
    login = await db.read(store.login_of, who.session)
    return ok({"user": await db.read(store.get_user, who.user_id), "expires_at": iso(login.expires_at),
               "refresh_expires_at": iso(login.refresh_until)})


@any_role
async def change_password(request: web.Request):
    """The logged-in user's own password (any role): the current one first;
    the user's other sessions end, this one goes on."""
    req = schemas.parse(schemas.PasswordChange, await json_body(request))
    token = _session_of(request)
    new = sessions.checked_password(req.new_password, "/new_password")
    db = request.app[DB]
    user = await db.read(store.get_user, request[PRINCIPAL].user_id)
    found = await db.read(store.password_hash_of, user["email"])
    if not await _verified(request, req.current_password, found[1] if found else None):
        raise Invalid("the current password is wrong", [Problem("/current_password", "not this account's password")])
    return ok({"user": await db.run(store.change_own_password, user["id"], await hashed(request, new), token)})

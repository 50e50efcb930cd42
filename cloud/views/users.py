"""Users, managed by admins (the first one registers: cloud.views.auth)."""

from __future__ import annotations

from aiohttp import web

from cloud import schemas, sessions
from cloud.appkeys import CONFIG, DB
from cloud.middleware import json_body
from cloud.store import users as store
from cloud.views.auth import hashed
from cloud.views.common import admin_only, int_param, ok, page_params, paged


@admin_only
async def list_(request: web.Request):
    limit, cursor = page_params(request)
    return paged(request, "users", await request.app[DB].run(store.list_users, limit, cursor))


@admin_only
async def create(request: web.Request):
    req = schemas.parse(schemas.UserCreate, await json_body(request))
    email, password = sessions.checked_email(req.email), sessions.checked_password(req.password)
    user = await request.app[DB].run(store.create_user, email, await hashed(request, password), req.role,
                                     request.app[CONFIG].clock())
    return ok({"user": user}, 201)


@admin_only
async def update(request: web.Request):
    req = schemas.parse(schemas.UserPatch, await json_body(request))
    password = None
    if req.password is not None:
        password = await hashed(request, sessions.checked_password(req.password))
    user = await request.app[DB].run(store.update_user, int_param(request, "user_id", "path"), req.role, password)
    return ok({"user": user})


@admin_only
async def delete(request: web.Request):
    await request.app[DB].run(store.delete_user, int_param(request, "user_id", "path"))
    return web.Response(status=204)

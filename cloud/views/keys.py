from __future__ import annotations

from aiohttp import web

from cloud import schemas
from cloud.appkeys import DB
from cloud.middleware import json_body
from cloud.store import keys as store
from cloud.views.common import admin_only, int_param, now, ok, page_params, paged


@admin_only
async def create(request: web.Request):
    req = schemas.parse(schemas.KeyCreate, await json_body(request))
    return ok(await request.app[DB].run(store.create_key, req.role, req.name, now(request)), 201)


@admin_only
async def list_(request: web.Request):
    limit, cursor = page_params(request)
    return paged(request, "keys", await request.app[DB].run(store.list_keys, limit, cursor))


@admin_only
async def revoke(request: web.Request):
    return ok(await request.app[DB].run(store.revoke_key, int_param(request, "key_id", "path")))

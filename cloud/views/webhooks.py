from __future__ import annotations

from aiohttp import web

from cloud.appkeys import BOX, DB
from cloud.middleware import json_body
from cloud.store import webhooks as store
from cloud.views.common import admin_only, choice_param, int_param, ok


@admin_only
async def create(request: web.Request):
    return ok(await request.app[DB].run(store.create_webhook, await json_body(request), request.app[BOX]), 201)


@admin_only
async def list_(request: web.Request):
    return ok({"webhooks": await request.app[DB].run(store.list_webhooks)})


@admin_only
async def delete(request: web.Request):
    await request.app[DB].run(store.delete_webhook, int_param(request, "webhook_id", "path"))
    return web.Response(status=204)


@admin_only
async def deliveries(request: web.Request):
    webhook_id = int_param(request, "webhook_id", "path")
    status = choice_param(request, "status", ("pending", "delivered", "dead"))
    return ok({"deliveries": await request.app[DB].run(store.list_deliveries, webhook_id, status)})


@admin_only
async def redeliver(request: web.Request):
    return ok(await request.app[DB].run(store.redeliver, int_param(request, "webhook_id", "path"),
                                        int_param(request, "delivery_id", "path")))

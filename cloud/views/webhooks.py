from __future__ import annotations

from aiohttp import web

from cloud.appkeys import BOX, DB
from cloud.middleware import json_body
from cloud.store import webhooks as store
from cloud.views.common import admin_only, choice_param, int_param, now, ok, page_params, paged


@admin_only
async def create(request: web.Request):
    body = await json_body(request)
    return ok(await request.app[DB].run(store.create_webhook, body, request.app[BOX], now(request)), 201)


@admin_only
async def list_(request: web.Request):
    limit, cursor = page_params(request)
    return paged(request, "webhooks", await request.app[DB].run(store.list_webhooks, limit, cursor))


@admin_only
async def delete(request: web.Request):
    await request.app[DB].run(store.delete_webhook, int_param(request, "webhook_id", "path"))
    return web.Response(status=204)


@admin_only
async def deliveries(request: web.Request):
    webhook_id = int_param(request, "webhook_id", "path")
    status = choice_param(request, "status", ("pending", "delivered", "dead"))
    limit, cursor = page_params(request)
    return paged(request, "deliveries", await request.app[DB].run(store.list_deliveries, webhook_id, status,
                                                                  limit, cursor), webhook_id=webhook_id)


@admin_only
async def redeliver(request: web.Request):
    return ok(await request.app[DB].run(store.redeliver, int_param(request, "webhook_id", "path"),
                                        int_param(request, "delivery_id", "path"), now(request)))

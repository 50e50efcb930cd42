from __future__ import annotations

import asyncio

from aiohttp import web

from cloud.appkeys import CONFIG, DB
from cloud.middleware import PRINCIPAL, json_body
from cloud.store import flows as store
from cloud.views.common import any_role, choice_param, int_param, now, ok, page_params, paged

FLOW_STATUSES = ("draft", "published", "archived")


async def create(request: web.Request):
    body = await json_body(request)
    return ok(await request.app[DB].run(store.create_flow, body, now(request)), 201)


@any_role
async def check(request: web.Request):
    # no database: validation is CPU work, kept off the loop and off the database thread
    return ok(await asyncio.to_thread(store.check_flow, await json_body(request)))


async def list_(request: web.Request):
    status = choice_param(request, "status", FLOW_STATUSES)
    limit, cursor = page_params(request)
    return paged(request, "flows", await request.app[DB].query(store.list_flows, status, request.query.get("tag"),
                                                              limit, cursor))


async def get(request: web.Request):
    text = await request.app[DB].read(store.get_flow_json, request.match_info["flow_id"])
    return web.Response(text=text, content_type="application/json")


async def update(request: web.Request):
    body = await json_body(request)
    return ok(await request.app[DB].run(store.update_flow, request.match_info["flow_id"], body, now(request)))


async def delete(request: web.Request):
    await request.app[DB].run(store.delete_flow, request.match_info["flow_id"])
    return web.Response(status=204)


async def publish(request: web.Request):
    body = await json_body(request, default={})
    return ok(await request.app[DB].run(store.publish_flow, request.match_info["flow_id"], body, now(request)))


async def archive(request: web.Request):
    return ok(await request.app[DB].run(store.archive_flow, request.match_info["flow_id"], now(request)))


async def versions(request: web.Request):
    flow_id = request.match_info["flow_id"]
    limit, cursor = page_params(request)
    return paged(request, "versions", await request.app[DB].query(store.list_versions, flow_id, limit, cursor),
                 flow_id=flow_id)


async def version(request: web.Request):
    flow_id = request.match_info["flow_id"]
    return ok(await request.app[DB].read(store.version, flow_id, int_param(request, "version", "path")))


async def compare(request: web.Request):
    v1, v2 = int_param(request, "v1"), int_param(request, "v2")
    return ok(await request.app[DB].read(store.compare_versions, request.match_info["flow_id"], v1, v2))


async def restore(request: web.Request):
    body = await json_body(request, default={})
    flow_id, number = request.match_info["flow_id"], int_param(request, "version", "path")
    return ok(await request.app[DB].run(store.restore_version, flow_id, number, body, now(request)))


async def quarantine(request: web.Request):
    body = await json_body(request, default={})
    flow_id, number = request.match_info["flow_id"], int_param(request, "version", "path")
    return ok(await request.app[DB].run(store.quarantine, flow_id, number, body, request.app[CONFIG].clock(),
                                        request[PRINCIPAL].by))


async def lift_quarantine(request: web.Request):
    flow_id, number = request.match_info["flow_id"], int_param(request, "version", "path")
    return ok(await request.app[DB].run(store.lift_quarantine, flow_id, number))

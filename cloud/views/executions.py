from __future__ import annotations

import functools

from aiohttp import web

from cloud.appkeys import BOX, CONFIG, DB, DRIVER
from cloud.middleware import PRINCIPAL, json_body
from cloud.store import executions as store
from cloud.views.common import choice_param, ok, page_params, paged, replayed, run_once


async def create(request: web.Request):
    body = await json_body(request)
    create = functools.partial(store.create_execution, triggered_by=request[PRINCIPAL].by)
    result = await run_once(request, create, body, request.app[BOX], request.app[CONFIG].clock())
    if again := replayed(result):
        return again
    doc, out = result
    request.app[DRIVER].send(out)
    return ok(doc, 201)


async def list_(request: web.Request):
    status = choice_param(request, "status", ("pending", "running", *store.FINISHED))
    limit, cursor = page_params(request)
    return paged(request, "executions", await request.app[DB].query(
        store.list_executions, request.query.get("flow_id"), status, limit, cursor))


async def get(request: web.Request):
    level = choice_param(request, "level", store.LOG_LEVELS)
    return ok(await request.app[DB].query(store.get_execution, request.match_info["execution_id"], level))


async def targets(request: web.Request):
    exe_id = request.match_info["execution_id"]
    level = choice_param(request, "level", store.LOG_LEVELS)
    limit, cursor = page_params(request)
    return paged(request, "targets", await request.app[DB].query(store.list_targets, exe_id, level, limit, cursor),
                 execution_id=exe_id)


async def cancel(request: web.Request):
    return ok(await request.app[DRIVER].cancel_execution(request.match_info["execution_id"]))


async def retry(request: web.Request):
    doc, out = await request.app[DB].run(store.again, request.match_info["execution_id"], request.app[BOX], True,
                                         request.app[CONFIG].clock(), request[PRINCIPAL].by)
    request.app[DRIVER].send(out)
    return ok(doc, 201)


async def replay(request: web.Request):
    doc, out = await request.app[DB].run(store.again, request.match_info["execution_id"], request.app[BOX], False,
                                         request.app[CONFIG].clock(), request[PRINCIPAL].by)
    request.app[DRIVER].send(out)
    return ok(doc, 201)

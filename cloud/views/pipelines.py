from __future__ import annotations

from aiohttp import web

from cloud.appkeys import BOX, DB, DRIVER
from cloud.middleware import PRINCIPAL, json_body
from cloud.store import pipelines as store
from cloud.views.common import ok, page_params, paged, replayed, run_once


async def create(request: web.Request):
    return ok(await request.app[DB].run(store.create_pipeline, await json_body(request)), 201)


async def list_(request: web.Request):
    limit, cursor = page_params(request)
    return paged(request, "pipelines", await request.app[DB].run(store.list_pipelines, limit, cursor))


async def get(request: web.Request):
    return ok(await request.app[DB].read(store.get_pipeline, request.match_info["pipeline_id"]))


async def delete(request: web.Request):
    await request.app[DB].run(store.delete_pipeline, request.match_info["pipeline_id"])
    return web.Response(status=204)


async def start(request: web.Request):
    result = await run_once(request, store.start_run, request.match_info["pipeline_id"], request.app[BOX],
                            request[PRINCIPAL].by)
    if again := replayed(result):
        return again
    doc, out = result
    request.app[DRIVER].send(out)
    return ok(doc, 201)


async def runs(request: web.Request):
    pipeline_id = request.match_info["pipeline_id"]
    limit, cursor = page_params(request, default=50)
    return paged(request, "runs", await request.app[DB].run(store.list_runs, pipeline_id, limit, cursor),
                 pipeline_id=pipeline_id)


async def run(request: web.Request):
    m = request.match_info
    return ok(await request.app[DB].read(store.get_run, m["pipeline_id"], m["run_id"]))


async def cancel(request: web.Request):
    m = request.match_info
    doc, out = await request.app[DB].run(store.cancel_run, m["pipeline_id"], m["run_id"], request.app[BOX])
    request.app[DRIVER].send(out)
    return ok(doc)

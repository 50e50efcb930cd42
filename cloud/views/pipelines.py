from __future__ import annotations

from aiohttp import web

from cloud import schemas
from cloud.appkeys import BOX, CONFIG, DB, DRIVER
from cloud.errors import Invalid
from cloud.middleware import PRINCIPAL, json_body
from cloud.store import pipelines as store
from cloud.views.common import choice_param, ok, page_params, paged, replayed, run_once


def _now(request: web.Request) -> float:
    return request.app[CONFIG].clock()


async def create(request: web.Request):
    return ok(await request.app[DB].run(store.create_pipeline, await json_body(request), _now(request)), 201)


async def list_(request: web.Request):
    limit, cursor = page_params(request)
    return paged(request, "pipelines", await request.app[DB].run(store.list_pipelines, limit, cursor))


async def get(request: web.Request):
    return ok(await request.app[DB].read(store.get_pipeline, request.match_info["pipeline_id"]))


async def update(request: web.Request):
    return ok(await request.app[DB].run(store.update_pipeline, request.match_info["pipeline_id"],
                                        await json_body(request)))


async def delete(request: web.Request):
    await request.app[DB].run(store.delete_pipeline, request.match_info["pipeline_id"])
    return web.Response(status=204)


async def _start(request: web.Request, pipeline_id: str):
    result = await run_once(request, store.start_run, pipeline_id, request.app[BOX], _now(request),
                            request[PRINCIPAL].by)
    if again := replayed(result):
        return again
    doc, out = result
    request.app[DRIVER].send(out)
    return ok(doc, 201)


async def start(request: web.Request):
    return await _start(request, request.match_info["pipeline_id"])


async def _runs(request: web.Request, of: str | None, **extra):
    limit, cursor = page_params(request, default=50)
    status = choice_param(request, "status", store.RUN_STATUSES)
    return paged(request, "runs", await request.app[DB].run(store.list_runs, of, limit, cursor, status), **extra)


async def runs(request: web.Request):
    pipeline_id = request.match_info["pipeline_id"]
    return await _runs(request, pipeline_id, pipeline_id=pipeline_id)


async def all_runs(request: web.Request):
    """Recent runs of every pipeline, newest first (seed 003's GET /api/pipelines/run?limit=N)."""
    return await _runs(request, None)


async def seed_runs(request: web.Request):
    """Seed 003's `GET /api/pipelines/run?limit=N`: the same list."""
    return await _runs(request, None)


async def run(request: web.Request):
    m = request.match_info
    return ok(await request.app[DB].read(store.get_run, m["pipeline_id"], m["run_id"]))


async def _act(request: web.Request, fn, pipeline_id: str | None, run_id: str, *args):
    doc, out = await request.app[DB].run(fn, pipeline_id, run_id, *args, _now(request), request.app[BOX])
    request.app[DRIVER].send(out)
    return ok(doc)


async def cancel(request: web.Request):
    m = request.match_info
    return await _act(request, store.cancel_run, m["pipeline_id"], m["run_id"])


async def advance(request: web.Request):
    m = request.match_info
    body = schemas.parse(schemas.RunAdvance, await json_body(request))
    return await _act(request, store.advance_run, m["pipeline_id"], m["run_id"], body.success)


async def seed_run(request: web.Request):
    """Seed 003's one endpoint for runs: `action` start (with pipeline_id),
    advance (run_id, success) or cancel (run_id)."""
    body = schemas.parse(schemas.SeedRunAction, await json_body(request))
    if problems := body.missing():
        raise Invalid(f"incomplete {body.action} action", problems)
    if body.action == "start":
        return await _start(request, body.pipeline_id)
    if body.action == "advance":
        return await _act(request, store.advance_run, None, body.run_id, body.success)
    return await _act(request, store.cancel_run, None, body.run_id)

from __future__ import annotations

from aiohttp import web

from cloud import schemas
from cloud.appkeys import DB, DRIVER
from cloud.engine.state import Cancel, Pause, Resume, Rollback, Start
from cloud.middleware import json_body
from cloud.store import deployments as store
from cloud.views.common import ok


async def create(request: web.Request):
    body = await json_body(request)
    return ok(await request.app[DB].run(store.create_deployment, body), 201)


async def list_(request: web.Request):
    q = request.query
    return ok({"deployments": await request.app[DB].read(store.list_deployments, q.get("status"), q.get("flow_id"))})


async def get(request: web.Request):
    return ok(await request.app[DB].read(store.get_deployment, request.match_info["deployment_id"]))


async def events(request: web.Request):
    dep_id = request.match_info["deployment_id"]
    return ok({"deployment_id": dep_id, "events": await request.app[DB].read(store.events, dep_id)})


async def _command(request: web.Request, event):
    await request.app[DB].run(store.get_deployment, request.match_info["deployment_id"])  # 404 first
    return ok(await request.app[DRIVER].command(request.match_info["deployment_id"], event))


async def start(request: web.Request):
    return await _command(request, Start())


async def pause(request: web.Request):
    return await _command(request, Pause())


async def resume(request: web.Request):
    return await _command(request, Resume())


async def cancel(request: web.Request):
    return await _command(request, Cancel())


async def rollback(request: web.Request):
    body = schemas.parse(schemas.RollbackBody, await json_body(request, default={}))
    return await _command(request, Rollback(body.reason))

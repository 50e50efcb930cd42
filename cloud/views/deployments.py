from __future__ import annotations

import asyncio

from aiohttp import web

from cloud import schemas
from cloud.appkeys import CONFIG, DB, DRIVER, STREAMS
from cloud.engine.state import DEPLOYMENT_STATUSES, FINISHED, TARGET_STATUSES, Cancel, Pause, Resume, Rollback, Start
from cloud.middleware import json_body
from cloud.store import deployments as store
from cloud.store import paging
from cloud.streams import frame
from cloud.views.common import bool_param, choice_param, ok, page_params, paged, replayed, run_once


async def create(request: web.Request):
    body = await json_body(request)
    config = request.app[CONFIG]
    if bool_param(request, "dry_run"):  # nothing is created: no idempotency record either
        return ok(await request.app[DB].run(store.create_deployment, body, config.clock(), True,
                                            config.rehearsal_default))
    result = await run_once(request, store.create_deployment, body, config.clock(), False, config.rehearsal_default)
    return replayed(result) or ok(result, 201)


async def list_(request: web.Request):
    status = choice_param(request, "status", DEPLOYMENT_STATUSES)
    limit, cursor = page_params(request)
    return paged(request, "deployments", await request.app[DB].query(
        store.list_deployments, status, request.query.get("flow_id"), limit, cursor, request.query.get("device_id")))


async def targets(request: web.Request):
    dep_id = request.match_info["deployment_id"]
    status = choice_param(request, "status", TARGET_STATUSES)
    limit, cursor = page_params(request)
    return paged(request, "targets", await request.app[DB].query(store.list_targets, dep_id, status, limit, cursor),
                 deployment_id=dep_id)


async def get(request: web.Request):
    return ok(await request.app[DB].query(store.get_deployment, request.match_info["deployment_id"]))


async def events(request: web.Request):
    dep_id = request.match_info["deployment_id"]
    limit, cursor = page_params(request, default=paging.MAX_LIMIT)
    return paged(request, "events", await request.app[DB].query(store.events, dep_id, limit, cursor),
                 deployment_id=dep_id)


async def _command(request: web.Request, event):
    # rollout.step raises NotFound for an unknown id before deciding anything
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


KEEPALIVE_S = 15.0


async def stream(request: web.Request):
    """Server-sent events of one deployment (cloud.streams): metadata (or
    sync after a reconnect), update..., complete."""
    dep_id = request.match_info["deployment_id"]
    streams = request.app[STREAMS]
    key = f"deployment:{dep_id}"
    sub = streams.subscribe(key)  # before reading the document: no update falls in between
    try:
        doc = await request.app[DB].query(store.get_deployment, dep_id)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await resp.write(frame(0, "sync" if request.headers.get("Last-Event-ID") else "metadata", doc))
        if doc["status"] in FINISHED:
            await resp.write(frame(0, "complete", {"id": dep_id, "status": doc["status"]}))
            return resp
        while True:
            try:
                item = await asyncio.wait_for(sub.next(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if item is None:  # too slow: dropped; the client reconnects and gets a sync
                await resp.write(frame(0, "error", {"detail": "the client fell behind; reconnect for a sync"}))
                return resp
            event_id, event, data = item
            await resp.write(frame(event_id, event, data))
            status = data.get("deployment", {}).get("status")
            if status in FINISHED:
                await resp.write(frame(event_id, "complete", {"id": dep_id, "status": status}))
                return resp
    finally:
        streams.unsubscribe(key, sub)

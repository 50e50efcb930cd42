"""The fleet, device, execution and pipeline streams (server-sent events;
what the first three hear: cloud.live). Like the deployment stream they open with `metadata`
(`sync` after a reconnect with Last-Event-ID), send `: keepalive` comments
when quiet, and end with `error` when the client fell behind (it reconnects
and gets a `sync`). A browser's session cookie works, as on every GET."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from cloud import live
from cloud.appkeys import DB, STREAMS
from cloud.engine.execution import FINISHED as EXECUTION_FINISHED
from cloud.errors import NotFound
from cloud.store import devices as device_store
from cloud.store import executions as exe_store
from cloud.store import pipelines as pipeline_store
from cloud.streams import frame
from cloud.views.common import choice_param

KEEPALIVE_S = 15.0
# An execution also changes without a nudge (a target settled by the tick
# once its record is stored, a timeout): its counts are looked at this often.
EXECUTION_CHECK_S = 1.0
_OPEN = ("pending", "running")


async def _opened(request: web.Request, doc) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    await resp.write(frame(0, "sync" if request.headers.get("Last-Event-ID") else "metadata", doc))
    return resp


async def _fell_behind(resp: web.StreamResponse) -> web.StreamResponse:
    await resp.write(frame(0, "error", {"detail": "the client fell behind; reconnect for a sync"}))
    return resp


async def _relay(request: web.Request, key: str, read, *args) -> web.StreamResponse:
    """metadata (`read(*args)` on the database thread), then every event
    published to `key`, until the client goes or falls behind."""
    streams = request.app[STREAMS]
    sub = streams.subscribe(key)  # before reading: nothing falls in between
    try:
        resp = await _opened(request, await request.app[DB].run(read, *args))
        while True:
            try:
                item = await asyncio.wait_for(sub.next(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if item is None:
                return await _fell_behind(resp)
            await resp.write(frame(*item))
    finally:
        streams.unsubscribe(key, sub)


async def fleet(request: web.Request):
    """Devices coming and going, their reported flow and slot, deployments
    changing state: metadata {devices: counts by state, deployments in
    progress}, then `device` and `deployment` events (cloud.live)."""
    return await _relay(request, live.FLEET, device_store.fleet_summary)


async def device(request: web.Request):
    """One device live: metadata (its document, 404 for an unknown one),
    then `status`, `health` and `runs` events (cloud.live)."""
    device_id = request.match_info["device_id"]
    return await _relay(request, live.device_key(device_id), device_store.get_device, device_id)


def _signature(target: dict) -> tuple:
    record = target.get("record") or {}
    return (target["status"], target.get("run"), target.get("reason"), record.get("run"), record.get("status"),
            len(record.get("nodes") or ()), len(record.get("logs") or ()))


async def execution(request: web.Request):
    """One execution live: metadata (the document, targets and their run
    records embedded up to 1,000), then `update` {execution: the document
    with its counts, targets: those whose status or record changed, each
    with its nodes and log lines (?level= filters them as on GET)}, and
    `complete` when it has ended."""
    exe_id = request.match_info["execution_id"]
    level = choice_param(request, "level", exe_store.LOG_LEVELS)
    db, streams = request.app[DB], request.app[STREAMS]
    key = live.execution_key(exe_id)
    sub = streams.subscribe(key)
    try:
        doc = await db.run(exe_store.get_execution, exe_id, level)
        resp = await _opened(request, doc)
        sent = {t["device_id"]: _signature(t) for t in doc.get("targets") or ()}
        state = (doc["status"], doc["counts"])
        quiet_since = time.monotonic()
        while doc["status"] not in EXECUTION_FINISHED:
            devices: set[str] = set()
            try:
                item = await asyncio.wait_for(sub.next(), EXECUTION_CHECK_S)
                if item is None:
                    return await _fell_behind(resp)
                event_id = item[0]
                devices.update(item[2].get("devices") or ())
            except asyncio.TimeoutError:
                event_id = 0
            update = await db.run(exe_store.live_update, exe_id, sorted(devices), level)
            now_state = (update["execution"]["status"], update["execution"]["counts"])
            if now_state != state:  # someone settled without a nudge naming them: look at the open ones
                still_open = sorted(d for d, sig in sent.items() if sig[0] in _OPEN and d not in devices)
                if still_open:
                    more = await db.run(exe_store.live_update, exe_id, still_open, level)
                    update["targets"] += more["targets"]
            update["targets"] = [t for t in update["targets"] if sent.get(t["device_id"]) != _signature(t)]
            if now_state != state or update["targets"]:
                sent.update((t["device_id"], _signature(t)) for t in update["targets"])
                state = now_state
                doc = update["execution"]
                await resp.write(frame(event_id, "update", update))
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                await resp.write(b": keepalive\n\n")
                quiet_since = time.monotonic()
        await resp.write(frame(0, "complete", {"id": exe_id, "status": doc["status"]}))
        return resp
    finally:
        streams.unsubscribe(key, sub)


PIPELINE_CHECK_S = 1.0
PIPELINE_RUNS = 10  # the runs a pipeline stream watches: the latest, where an active one is


def _pipeline_now(pipeline_id: str) -> dict:
    return {"pipeline": pipeline_store.get_pipeline(pipeline_id),
            "runs": pipeline_store.list_runs(pipeline_id, PIPELINE_RUNS)[0]}


async def pipeline(request: web.Request):
    """A pipeline live, for its active-run banner and history: metadata
    {pipeline with its counters, runs: the latest 10}, then `run` {run,
    pipeline} whenever a run starts, moves to another step, or a step or
    the run ends; `pipeline` {pipeline} when it is edited (its name, steps
    or targets) with no run moving; `deleted` {id} when it is deleted, and
    the stream ends. Pipeline runs move when their steps' executions end,
    which the database records; the stream looks every second (one indexed
    read)."""
    pipeline_id = request.match_info["pipeline_id"]
    db = request.app[DB]
    now = await db.run(_pipeline_now, pipeline_id)
    resp = await _opened(request, now)
    seen = {r["id"]: r for r in now["runs"]}
    shown = now["pipeline"]
    quiet_since = time.monotonic()
    event_id = 0
    while True:
        await asyncio.sleep(PIPELINE_CHECK_S)
        try:
            now = await db.run(_pipeline_now, pipeline_id)
        except NotFound:
            await resp.write(frame(event_id + 1, "deleted", {"id": pipeline_id}))
            return resp
        changed = [r for r in reversed(now["runs"]) if seen.get(r["id"]) != r]  # oldest first
        for run in changed:
            event_id += 1
            await resp.write(frame(event_id, "run", {"run": run, "pipeline": now["pipeline"]}))
            seen[run["id"]] = run
        edited = not changed and now["pipeline"] != shown
        if edited:
            event_id += 1
            await resp.write(frame(event_id, "pipeline", {"pipeline": now["pipeline"]}))
        shown = now["pipeline"]
        if changed or edited:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            await resp.write(b": keepalive\n\n")
            quiet_since = time.monotonic()

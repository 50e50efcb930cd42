from __future__ import annotations

import inspect
import logging

from aiohttp import web

from cloud.appkeys import BOX, BRIDGE, CONFIG, DB
from cloud.errors import BadGateway, Invalid, Problem
from cloud.middleware import KEY_HASH, json_body
from cloud.store import devices as store
from cloud.store import idempotency
from cloud.store import runs as run_store
from cloud.views.common import bool_param, choice_param, ok, page_params, paged, replayed, run_once, whole_number

log = logging.getLogger("fleetflow.api")


def _live(request: web.Request, doc: dict) -> dict:
    """Overlay the freshest health the bridge heard (the database gets it batched)."""
    bridge = request.app.get(BRIDGE)
    live = bridge.live.get(doc["id"]) if bridge else None
    if live and live.get("health"):
        doc["health"] = live["health"]
    return doc


def _provision(body, box, broker, prefix, reserved, ca, now):
    """store.provision, with the broker's CA (MQTT over TLS) in the answer:
    inside the transaction, so an Idempotency-Key replay carries it too."""
    doc, password = store.provision(body, box, broker, prefix, reserved, now)
    if ca:
        doc["credentials"]["mqtt"]["ca"] = ca
    return doc, password


async def provision(request: web.Request):
    body = await json_body(request)
    config = request.app[CONFIG]
    result = await run_once(request, _provision, body, request.app[BOX], config.device_broker(),
                            config.topic_prefix, config.reserved_names(), config.device_ca(), config.clock())
    if again := replayed(result):
        return again
    doc, password = result
    try:
        await _call_hook(config.on_provision, doc["id"], password)
    except Exception as exc:
        # Without broker credentials the device could never connect, and
        # its password is shown only in this answer: undo, so a retry works.
        log.exception("provisioning hook failed for %s", doc["id"])
        await request.app[DB].run(store.delete_device, doc["id"])
        if idempotency.HEADER in request.headers:  # its recorded answer goes with it: a retry provisions anew
            await request.app[DB].run(idempotency.forget, request[KEY_HASH], request.headers[idempotency.HEADER])
        raise BadGateway(f"device {doc['id']} could not be added to the broker ({type(exc).__name__}: {exc}); "
                         "nothing was kept: try again once the broker answers") from None
    return ok(doc, 201)


async def _call_hook(hook, *args) -> None:
    if hook is not None:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result


async def list_(request: web.Request):
    q = request.query
    raw_version = q.get("version")
    where = store.DeviceFilter(
        q=q.get("q") or None, tag=q.get("tag") or None, environment=q.get("environment") or None,
        board=q.get("board") or None, online=bool_param(request, "online"), flow=q.get("flow") or None,
        version=whole_number(raw_version, "?version", "version") if raw_version else None,
        trial=bool_param(request, "trial"))
    sort = choice_param(request, "sort", tuple(store.SORTS)) or "id"
    limit, cursor = page_params(request)
    docs, cursor = await request.app[DB].query(store.list_devices, where, sort, limit, cursor)
    return paged(request, "devices", ([_live(request, d) for d in docs], cursor))


async def get(request: web.Request):
    return ok(_live(request, await request.app[DB].read(store.get_device, request.match_info["device_id"])))


async def update(request: web.Request):
    body = await json_body(request)
    return ok(await request.app[DB].run(store.update_device, request.match_info["device_id"], body))


async def delete(request: web.Request):
    """The broker account goes first (its session is kicked): if the broker
    fails, nothing is deleted and a retry works."""
    device_id = request.match_info["device_id"]
    await request.app[DB].run(store.check_deletable, device_id)
    try:
        await _call_hook(request.app[CONFIG].on_delete, device_id)
    except Exception as exc:
        log.exception("broker account deletion failed for %s", device_id)
        raise BadGateway(f"device {device_id}'s broker account could not be deleted ({type(exc).__name__}: {exc}); "
                         "the device was kept: try again once the broker answers") from None
    await request.app[DB].run(store.delete_device, device_id)
    return web.Response(status=204)


async def runs(request: web.Request):
    limit, cursor = page_params(request, default=20, maximum=500)
    device_id = request.match_info["device_id"]
    page = await request.app[DB].query(run_store.recent_runs, device_id, limit, cursor)
    return paged(request, "runs", page, device_id=device_id)

"""Devices: provisioning (credentials shown once), tags and environment,
and the last state each one reported over MQTT."""

from __future__ import annotations

import os
import secrets as _random
from dataclasses import dataclass

from peewee import fn
from shared_schema.boards import board_names
from shared_schema.catalog import board_types

from cloud import dynsec, schemas, secrets
from cloud.db import get_or_404, tag_match
from cloud.errors import Conflict, Invalid, Problem
from cloud.models import Deployment, Device, Target
from cloud.store import paging
from cloud.timefmt import iso

ACTIVE_DEPLOYMENTS = ("pending", "running", "paused")
# What a device's live document takes from its retained status message.
STATUS_FIELDS = ("fw", "slot", "flow", "ver", "seq", "trial", "heap", "nt_hash", "reset")


def device_doc(dev: Device) -> dict:
    status = dev.status or {}
    doc = {
        "id": dev.id, "device_id": dev.id, "name": dev.name, "board": dev.board, "tags": dev.tags,
        "environment": dev.environment or None, "online": bool(dev.online),
        "state": "online" if dev.online else ("offline" if dev.status is not None else "never_seen"),
        "last_seen": iso(dev.last_seen), "created_at": iso(dev.created_at),
        "types": status.get("types"), "health": dev.health,
    }
    for key in STATUS_FIELDS:
        doc[key] = status.get(key)
    # the device's clock, from its latest status or health (cloud/bridge.py stamp_clock)
    health = dev.health or {}
    latest = health if health.get("received_at", 0) >= status.get("received_at", 0) else status
    doc["time_synced"] = latest.get("synced")
    doc["clock_skew_s"] = latest.get("clock_skew_s")
    return doc


def _get(device_id: str) -> Device:
    return get_or_404(Device, device_id, "device")


def provision(body: dict, box: secrets.SecretBox, broker: tuple[str, int], prefix: str,
              reserved: tuple[str | None, ...], now: float) -> tuple[dict, str]:
    """Register a device. Returns (document with credentials, MQTT password);
    the credentials are never shown again. `reserved`: the cloud's own broker
    names (Config.reserved_names), refused like cloud.dynsec's fixed ones."""
    req = schemas.parse(schemas.Provision, body)
    if req.id is not None and dynsec.is_reserved(req.id, reserved):
        raise Invalid("reserved device id", [Problem("/id", f"{req.id!r} is reserved for the cloud's own broker "
                                                            f"account (cloud, admin, {dynsec.RESERVED_PREFIX}*): "
                                                            "choose another id")])
    if req.board not in board_names():
        raise Invalid("unknown board", [Problem("/board", f"unknown board {req.board!r}; boards: "
                                                           f"{', '.join(board_names())}")])
    device_id = req.id or "dev_" + _random.token_hex(5)
    if Device.get_or_none(Device.id == device_id) is not None:
        raise Conflict(f"device {device_id} already exists")
    password = secrets.new_token()
    key = os.urandom(32)
    dev = Device.create(id=device_id, name=req.name, board=req.board, tags=req.tags, environment=req.environment,
                        password_hash=secrets.hash_token(password), key_sealed=box.seal(key), created_at=now)
    doc = device_doc(dev)
    doc["credentials"] = {
        "mqtt": {"host": broker[0], "port": broker[1], "username": device_id, "password": password,
                 "client_id": device_id, "prefix": prefix},
        "hmac_key": key.hex(),
    }
    return doc, password


# ?sort= of a device list: the columns of its keyset order (cloud.store.paging).
# Never-seen devices (last_seen NULL) count as seen at 0: last with -last_seen.
_SEEN = paging.Computed(fn.COALESCE(Device.last_seen, 0.0), "seen_order", Device.last_seen)
SORTS = {
    "id": ((Device.natural_key, Device.id), False),
    "-id": ((Device.natural_key, Device.id), True),
    "last_seen": ((_SEEN, Device.natural_key, Device.id), False),
    "-last_seen": ((_SEEN, Device.natural_key, Device.id), True),
    "name": ((Device.name, Device.natural_key, Device.id), False),
}


@dataclass(frozen=True)
class DeviceFilter:
    """What a device list is narrowed to (None: any)."""

    q: str | None = None  # in the id or the name, any case
    tag: str | None = None
    environment: str | None = None
    board: str | None = None
    online: bool | None = None
    flow: str | None = None  # the flow it reported running
    version: int | None = None
    trial: bool | None = None


def list_devices(where: DeviceFilter = DeviceFilter(), sort: str = "id", limit: int = paging.DEFAULT_LIMIT,
                 cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of devices in `sort` order (SORTS; ids in natural order:
    node-2 before node-10); returns (documents, cursor of the next page)."""
    query = Device.select()
    if where.q:
        needle = where.q.lower()
        query = query.where(fn.LOWER(Device.id).contains(needle) | fn.LOWER(Device.name).contains(needle))
    if where.tag:
        query = query.where(tag_match(Device.tags, where.tag))
    for column, value in ((Device.environment, where.environment), (Device.board, where.board),
                          (Device.online, where.online), (Device.flow, where.flow), (Device.ver, where.version),
                          (Device.trial, where.trial)):
        if value is not None and value != "":
            query = query.where(column == value)
    fields, descending = SORTS[sort]
    got = paging.page(query, f"devices:{sort}", fields, limit, cursor, descending)
    return [device_doc(d) for d in got.rows if not where.tag or where.tag in d.tags], got.cursor


def get_device(device_id: str) -> dict:
    return device_doc(_get(device_id))


def update_device(device_id: str, body: dict) -> dict:
    req = schemas.parse(schemas.DevicePatch, body)
    dev = _get(device_id)
    for key in ("name", "tags", "environment"):
        value = getattr(req, key)
        if value is not None:
            setattr(dev, key, value)
    dev.save()
    return device_doc(dev)


def check_deletable(device_id: str) -> None:
    """NotFound, or Conflict while a deployment in progress targets it."""
    _get(device_id)
    busy = [t.deployment for t in Target.select(Target.deployment).join(
        Deployment, on=(Deployment.id == Target.deployment)).where(
        (Target.device == device_id) & (Deployment.status.in_(ACTIVE_DEPLOYMENTS)))]
    if busy:
        raise Conflict(f"device {device_id} is a target of deployments in progress: {', '.join(busy)}",
                       deployments=busy)


def delete_device(device_id: str) -> None:
    check_deletable(device_id)
    Device.delete().where(Device.id == device_id).execute()


def device_key(device_id: str, box: secrets.SecretBox) -> bytes:
    return box.open(_get(device_id).key_sealed)


def node_types(dev: Device) -> list[str]:
    """What the device can run: the types it reported, else its board's."""
    reported = (dev.status or {}).get("types")
    return list(reported) if isinstance(reported, list) and reported else board_types(dev.board)


# -- what the MQTT bridge reports ---------------------------------------------------

def record_status(device_id: str, status: dict, now: float) -> bool:
    """Store a status report; True when the device just came online."""
    dev = Device.get_or_none(Device.id == device_id)
    if dev is None:
        return False
    online = status.get("state") == "online"
    came_online = online and not dev.online
    dev.online = online
    if online:
        dev.status = status
        dev.flow, dev.ver, dev.trial = status.get("flow"), status.get("ver"), bool(status.get("trial"))
    else:
        dev.status = dict(dev.status or {}, state="offline")
    dev.last_seen = now
    dev.save()
    return came_online


def record_health(reports: dict[str, tuple[dict, float]]) -> None:
    """Store the latest health report of each device (batched by the bridge)."""
    for device_id, (health, now) in reports.items():
        Device.update(health=health, last_seen=now).where(Device.id == device_id).execute()


def fleet_summary() -> dict:
    """What the fleet stream opens with: devices by state, and the
    deployments in progress."""
    states = {"online": 0, "offline": 0, "never_seen": 0}
    for online, seen, n in (Device.select(Device.online, Device.status.is_null(False).alias("seen"),
                                          fn.COUNT(Device.id))
                            .group_by(Device.online, Device.status.is_null(False)).tuples()):
        states["online" if online else ("offline" if seen else "never_seen")] += n
    active = [{"id": d.id, "flow_id": d.flow, "version": d.version, "strategy": d.strategy, "status": d.status,
               "phase": d.phase or None, "batch": d.batch}
              for d in Deployment.select().where(Deployment.status.in_(ACTIVE_DEPLOYMENTS))
              .order_by(Deployment.created_at.desc()).limit(100)]
    return {"devices": {**states, "total": sum(states.values())}, "deployments": active}

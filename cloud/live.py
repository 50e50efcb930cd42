"""What the fleet and execution streams hear (cloud.views.streams serves
them; cloud.streams carries the events). The bridge and the driver call
these as things happen; each is a publish that never waits.

- `fleet`: `device` {"device": {id, online, state, last_seen, and what its
  status reported}} when a device reports its status (online, offline, a
  new flow or slot); `deployment` {"deployment": {id, status, phase, batch,
  counts, ...what changed}} when a deployment's state changes.
- `device:<id>`: the device page's: `status` (the fleet's `device` data),
  `health` {"health": {...}, "at"} as each report is heard (before the
  database has it: health is written in batches), `runs` {"runs": [...]} as
  its run reports are stored (nodes, timings, outputs, errors, log lines).
- `execution:<id>`: `changed` {"devices": [...]} nudges: the stream reads
  those devices' targets (with their run records and logs) and the
  execution's counts, and sends what is new. `devices` is null when it is
  not known who changed, or too many did to send (EMBED_TARGETS_MAX): the
  counts still go out.
"""

from __future__ import annotations

from cloud.store.deployments import EMBED_TARGETS_MAX
from cloud.store.devices import STATUS_FIELDS
from cloud.timefmt import iso

FLEET = "fleet"


def execution_key(exe_id: str) -> str:
    return f"execution:{exe_id}"


def device_key(device_id: str) -> str:
    return f"device:{device_id}"


def device_status(streams, device_id: str, status: dict, now: float) -> None:
    """A device's status report was stored (cloud.bridge)."""
    if streams is None:
        return
    online = status.get("state") == "online"
    doc = {"id": device_id, "online": online, "state": "online" if online else "offline", "last_seen": iso(now)}
    if online:  # an offline report carries nothing else; the last reported values stand
        doc.update({key: status.get(key) for key in STATUS_FIELDS})
    # Every cloud replica hears every status (cloud.bridge, "Replicas"), so
    # each tells its own watchers only.
    streams.publish(FLEET, "device", {"device": doc}, replicate=False)
    streams.publish(device_key(device_id), "status", {"device": doc}, replicate=False)


def device_health(streams, device_id: str, health: dict, now: float) -> None:
    """A health report was heard (cloud.bridge)."""
    if streams is not None:
        streams.publish(device_key(device_id), "health", {"health": health, "at": iso(now)})


def deployment_changed(streams, dep_id: str, update: dict | None) -> None:
    """A deployment's step changed something (cloud.driver, with the update
    its own stream gets): its state, without the per-target detail."""
    if streams is None or not update or not update.get("deployment"):
        return
    streams.publish(FLEET, "deployment", {"deployment": {"id": dep_id, **update["deployment"]}})


def execution_changed(streams, exe_id: str, devices: list[str] | None) -> None:
    """An execution's targets (or, devices None, its state) may have changed."""
    if streams is None:
        return
    named = sorted(set(devices)) if devices is not None and len(set(devices)) <= EMBED_TARGETS_MAX else None
    streams.publish(execution_key(exe_id), "changed", {"devices": named})


def runs_stored(streams, batches: list[tuple[str, dict]]) -> None:
    """Run reports were stored (cloud.bridge): the executions they belong
    to have new records and log lines."""
    if streams is None:
        return
    by_exec: dict[str, list[str]] = {}
    for device_id, batch in batches:
        if batch.get("runs"):
            streams.publish(device_key(device_id), "runs", {"runs": batch["runs"]})
        for rec in batch.get("runs") or ():
            if rec.get("exec"):
                by_exec.setdefault(rec["exec"], []).append(device_id)
    for exe_id, devices in by_exec.items():
        execution_changed(streams, exe_id, devices)

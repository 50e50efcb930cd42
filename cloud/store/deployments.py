"""Deployments: creation (targets, node-type check, per-board compile) and
the documents the API shows (seed 001's shape plus counts per status)."""

from __future__ import annotations

import secrets as _random

from shared_schema.commands import DEPLOYMENT_PREFIX
from shared_schema.compiler import CompileError, compile_program

from cloud import schemas
from cloud.engine import rehearsal
from cloud.engine import settings as engine_settings
from cloud.engine.decide import plan_batches
from cloud.engine.state import TARGET_STATUSES
from peewee import fn

from cloud.db import chunks, get_or_404, insert_rows
from cloud.errors import Conflict, Invalid, Problem
from cloud.models import Deployment, DeploymentEvent, Device, Flow, FlowVersion, Program, Target
from cloud.store import paging
from cloud.store.devices import node_types
from cloud.store.flows import quarantine_text
from cloud.store.rollout import kept_counts
from cloud.timefmt import iso


LOOKUP_CHUNK = 500  # ids per IN (...) query: under every database's limit on bound parameters


def first_positions(ids: list[str]) -> dict[str, int]:
    """Each id once, in the order given, with the index it first appears at
    (what an error's pointer names): duplicates are dropped, not refused."""
    positions: dict[str, int] = {}
    for i, device_id in enumerate(ids):
        positions.setdefault(device_id, i)
    return positions


def resolve_targets(req) -> list[Device]:
    if not (req.target_devices or req.target_tags or req.environment):
        raise Invalid("no targets", [Problem("/target_devices",
                                             "name target_devices, target_tags or environment, or set all")])
    chosen: dict[str, Device] = {}
    positions = first_positions(req.target_devices)
    wanted = list(positions)
    found: dict[str, Device] = {}
    for i in range(0, len(wanted), LOOKUP_CHUNK):  # one query per chunk, not one per id
        found.update((d.id, d) for d in Device.select().where(Device.id.in_(wanted[i:i + LOOKUP_CHUNK])))
    problems = []
    for device_id in wanted:
        dev = found.get(device_id)
        if dev is None:
            problems.append(Problem(f"/target_devices/{positions[device_id]}", f"no device {device_id!r}"))
        else:
            chosen[dev.id] = dev
    if problems:
        raise Invalid("unknown target devices", problems)
    if req.target_tags or req.environment:
        query = Device.select().order_by(Device.id)
        if req.environment:
            query = query.where(Device.environment == req.environment)
        for dev in query:
            if all(tag in dev.tags for tag in req.target_tags):
                chosen.setdefault(dev.id, dev)
    if not chosen:
        raise Invalid("no device matches the targets", [Problem(_selector_pointer(req), "no device matches")])
    return list(chosen.values())


def _selector_pointer(req) -> str:
    """Where in the body the devices chosen by tag or environment came from."""
    return "/target_tags" if req.target_tags else "/environment"


def check_types(devices: list[Device], types: list[str], req) -> None:
    problems, missing = [], {}
    positions = first_positions(req.target_devices)
    for dev in devices:
        lacking = sorted(set(types) - set(node_types(dev)))
        if lacking:
            missing[dev.id] = lacking
            where = f"/target_devices/{positions[dev.id]}" if dev.id in positions else _selector_pointer(req)
            problems.append(Problem(where, f"device {dev.id} lacks node types: {', '.join(lacking)}"))
    if problems:
        raise Invalid(f"{len(missing)} target device(s) lack node types the flow uses", problems, missing=missing)


def compile_for(fv: FlowVersion, devices: list[Device]) -> dict:
    programs, problems = {}, []
    for board in sorted({d.board for d in devices}):
        on_board = [d.id for d in devices if d.board == board]
        try:
            programs[board] = compile_program(fv.body, board, fv.flow, fv.version)
        except CompileError as exc:
            for p in exc.problems:
                problems.append(Problem(p.pointer, f"{p.message} (devices: {', '.join(on_board)})", (board,)))
    if problems:
        raise Invalid(f"version {fv.version} of flow {fv.flow} does not compile for every target board", problems)
    return programs


def published_version(flow_id: str, number: int | None, force: bool = False) -> FlowVersion:
    """The version a deployment or an execution runs: `number`, else the
    latest version that is not quarantined. An archived flow runs nothing
    (409), like a never published one. A quarantined version named by
    `number` is refused (409, with why it was quarantined) unless `force`."""
    flow = Flow.get_or_none(Flow.id == flow_id)
    if flow is None:
        raise Invalid("unknown flow", [Problem("/flow_id", f"no flow {flow_id!r}")])
    if flow.status == "archived":
        raise Conflict(f"flow {flow_id} is archived: archived flows are not deployed or executed",
                       current_status=flow.status)
    if not flow.version:
        raise Conflict(f"flow {flow_id} has no published version: publish it first")
    if number is None:
        fv = (FlowVersion.select().where((FlowVersion.flow == flow_id) & FlowVersion.quarantined.is_null())
              .order_by(FlowVersion.version.desc()).first())
        if fv is None:
            raise Conflict(f"every version of flow {flow_id} is quarantined (the latest, v{flow.version}: "
                           f"{quarantine_text(get_version_row(flow_id, flow.version))}); name a version and "
                           "send force: true, or lift a quarantine", quarantined=True)
        return fv
    fv = get_version_row(flow_id, number)
    if fv is None:
        raise Invalid("unknown version", [Problem("/version", f"flow {flow_id} has no version {number}")])
    if fv.quarantined and not force:
        raise Conflict(f"version {number} of flow {flow_id} is quarantined: {quarantine_text(fv)}; send "
                       f"force: true to deploy it anyway, or lift the quarantine (DELETE "
                       f"/api/v1/flows/{flow_id}/versions/{number}/quarantine)", quarantined=fv.quarantined)
    return fv


def get_version_row(flow_id: str, number: int) -> FlowVersion | None:
    return FlowVersion.get_or_none((FlowVersion.flow == flow_id) & (FlowVersion.version == number))


# Pre-flight classes of a target, in the order they are checked.
PREFLIGHT = ("lacks_node", "never_seen", "offline", "ready")
PREFLIGHT_LIST_MAX = 1000  # a dry run lists this many targets (the not-ready first); counts cover all


def preflight_class(dev: Device, types: list[str]) -> tuple[str, str]:
    """(class, detail) of one target for a version using `types`."""
    lacking = sorted(set(types) - set(node_types(dev)))
    if lacking:
        return "lacks_node", "lacks node types: " + ", ".join(lacking)
    if dev.last_seen is None:
        return "never_seen", "never connected to the broker"
    if not dev.online:
        return "offline", f"offline since {iso(dev.last_seen)}"
    return "ready", ""


def preflight(devices: list[Device], types: list[str]) -> dict:
    rows = [(d.id, *preflight_class(d, types)) for d in devices]
    counts = {c: 0 for c in PREFLIGHT}
    for _, c, _ in rows:
        counts[c] += 1
    order = {c: i for i, c in enumerate(PREFLIGHT)}
    listed = sorted(rows, key=lambda r: order[r[1]])[:PREFLIGHT_LIST_MAX]
    return {"total": len(rows), "counts": counts,
            "targets": [{"device_id": d, "class": c, "detail": detail} for d, c, detail in listed]}


def _offline_ids(devices: list[Device]) -> list[str]:
    return [d.id for d in devices if not d.online]


def create_deployment(body: dict, now: float, dry_run: bool = False, rehearse_default: bool = True) -> dict:
    """Create a deployment (pending). `dry_run`: nothing is created; the answer is the
    pre-flight of every target (`preflight`) and whether creating it would be refused.
    `rehearse_default`: whether it rehearses when the body does not say (cloud/rehearsal.py)."""
    req = schemas.parse(schemas.DeploymentCreate, body)
    config = req.config.model_dump(exclude_unset=True)  # the keys given, as given
    settings = engine_settings.resolve(req.strategy, config)
    fv = published_version(req.flow_id, req.version, force=req.force)
    devices = list(Device.select().order_by(Device.id)) if req.all else resolve_targets(req)
    if not devices:
        raise Invalid("no devices", [Problem("/all", "there are no devices")])
    if dry_run:
        out = {"dry_run": True, "flow_id": fv.flow, "version": fv.version, "strategy": req.strategy,
               "settings": settings, "offline": req.offline, "quarantined": fv.quarantined,
               "preflight": preflight(devices, fv.types), "refused": None,
               # whether creating it would rehearse it first (the cloud's default applied)
               "rehearse": rehearsal.wanted(req.strategy, len(devices), req.rehearse, rehearse_default)}
        try:
            check_types(devices, fv.types, req)
            compile_for(fv, devices)
            _offline_policy(req, devices)
        except (Invalid, Conflict) as exc:
            out["refused"] = {"status": exc.status, "detail": str(exc.args[0]) if exc.args else exc.title}
        if req.offline == "skip":
            out["skipped"] = len(_offline_ids(devices))
        return out
    check_types(devices, fv.types, req)
    programs = compile_for(fv, devices)
    devices, skipped = _offline_policy(req, devices)
    rehearse = rehearsal.wanted(req.strategy, len(devices), req.rehearse, rehearse_default)
    dep = Deployment.create(
        id=DEPLOYMENT_PREFIX + _random.token_hex(6), flow=fv.flow, version=fv.version, strategy=req.strategy,
        config=config, settings=settings, created_at=now,
        rehearsal={"status": "pending", "runs": req.rehearsal_runs} if rehearse else None,
        selector={"target_devices": list(first_positions(req.target_devices)), "target_tags": req.target_tags,
                  "environment": req.environment, "all": req.all})
    for board, prog in programs.items():
        Program.create(deployment=dep.id, board=board, data=prog.text, sha256=prog.sha256, size=prog.size)
    batches = plan_batches(req.strategy, settings, len(devices))
    rows = [{"deployment": dep.id, "device": d.id, "position": i, "board": d.board, "batch": batches[i],
             "updated_at": now} for i, d in enumerate(devices)]
    insert_rows(Target, rows)
    detail = {"targets": len(devices), "strategy": req.strategy, "offline": req.offline}
    if skipped:
        detail["skipped_offline"] = skipped[:100]
        detail["skipped_offline_count"] = len(skipped)
    DeploymentEvent.create(deployment=dep.id, at=now, kind="created", detail=detail)
    doc = get_deployment(dep.id)
    if skipped:
        doc["skipped_offline"] = {"count": len(skipped), "devices": skipped[:100]}
    return doc


def _offline_policy(req, devices: list[Device]) -> tuple[list[Device], list[str]]:
    """(the targets to create, the ids left out) under the request's `offline` setting."""
    offline = _offline_ids(devices)
    if not offline or req.offline == "wait":
        return devices, []
    if req.offline == "fail":
        shown = ", ".join(offline[:20]) + (f" and {len(offline) - 20} more" if len(offline) > 20 else "")
        raise Conflict(f"{len(offline)} target(s) offline and offline is \"fail\": {shown}; bring them online, "
                       "or send offline: \"wait\" (the default) or \"skip\"", offline=offline[:1000])
    if len(offline) == len(devices):
        raise Conflict("every target is offline and offline is \"skip\": nothing would be deployed",
                       offline=offline[:1000])
    gone = set(offline)
    return [d for d in devices if d.id not in gone], offline


def _get(dep_id: str) -> Deployment:
    return get_or_404(Deployment, dep_id, "deployment")


# A deployment document embeds its targets up to this many; a bigger one
# has `targets_url` instead (GET /deployments/{id}/targets, paged).
EMBED_TARGETS_MAX = 1000


def target_doc(t: Target) -> dict:
    return {"device_id": t.device, "status": t.status, "batch": t.batch, "board": t.board, "step": t.step or None,
            "ack": t.ack or None, "seq": t.seq, "reason": t.reason or None, "updated_at": iso(t.updated_at)}


def rehearsal_doc(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {k: (iso(v) if k.endswith("_at") else v) for k, v in r.items()}


def deployment_doc(dep: Deployment, counts: dict, targets: list[Target] | None = None) -> dict:
    doc = {
        "id": dep.id, "flow_id": dep.flow, "version": dep.version, "strategy": dep.strategy, "status": dep.status,
        "phase": dep.phase or None, "batch": dep.batch, "config": dep.config, "settings": dep.settings,
        # the rate deploys go out at now (rate control), null when unlimited
        "rate_per_minute": (dep.pace or {}).get("rate"),
        "targets_selector": dep.selector,
        "total_targets": sum(counts.values()), "completed_targets": counts["success"],
        "failed_targets": counts["failed"], "counts": counts, "reason": dep.reason or None,
        "created_at": iso(dep.created_at), "started_at": iso(dep.started_at), "finished_at": iso(dep.finished_at),
        "targets_url": f"/api/v1/deployments/{dep.id}/targets",
        "rehearsal": rehearsal_doc(dep.rehearsal),
    }
    if targets is not None:
        doc["targets"] = [target_doc(t) for t in targets]
    return doc


def target_counts(dep_ids: list[str]) -> dict[str, dict]:
    """Targets per status of each deployment (one GROUP BY per chunk of ids)."""
    counts = {d: dict.fromkeys(TARGET_STATUSES, 0) for d in dep_ids}
    for chunk in chunks(dep_ids):
        rows = (Target.select(Target.deployment, Target.status, fn.COUNT(Target.id))
                .where(Target.deployment.in_(chunk)).group_by(Target.deployment, Target.status).tuples())
        for dep_id, status, n in rows:
            counts[dep_id][status] = n
    return counts


def get_deployment(dep_id: str) -> dict:
    """The document with counts; the targets embedded when there are at
    most EMBED_TARGETS_MAX of them."""
    dep = _get(dep_id)
    counts = kept_counts(dep) or target_counts([dep_id])[dep_id]
    targets = None
    if sum(counts.values()) <= EMBED_TARGETS_MAX:
        targets = list(Target.select().where(Target.deployment == dep_id).order_by(Target.position))
    return deployment_doc(dep, counts, targets)


def list_targets(dep_id: str, status: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                 cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a deployment's targets in their order."""
    _get(dep_id)
    query = Target.select().where(Target.deployment == dep_id)
    if status:
        query = query.where(Target.status == status)
    got = paging.page(query, "targets", (Target.position,), limit, cursor)
    return [target_doc(t) for t in got.rows], got.cursor


def list_deployments(status: str | None = None, flow_id: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                     cursor: str | None = None, device_id: str | None = None) -> tuple[list[dict], str | None]:
    """One page of deployments, newest first, with their counts; `device_id`:
    only those targeting that device."""
    query = Deployment.select()
    if device_id:
        query = query.where(Deployment.id.in_(Target.select(Target.deployment).where(Target.device == device_id)))
    if status:
        query = query.where(Deployment.status == status)
    if flow_id:
        query = query.where(Deployment.flow == flow_id)
    got = paging.page(query, "deployments", (Deployment.created_at, Deployment.id), limit, cursor, descending=True)
    counts = target_counts([d.id for d in got.rows])
    return [deployment_doc(d, counts[d.id]) for d in got.rows], got.cursor


def events(dep_id: str, limit: int = paging.MAX_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of what happened to a deployment, in order (a 100,000-target
    rollout records several events a target)."""
    _get(dep_id)
    got = paging.page(DeploymentEvent.select().where(DeploymentEvent.deployment == dep_id), "events",
                      (DeploymentEvent.id,), limit, cursor)
    return [{"at": iso(e.at), "kind": e.kind, "device_id": e.device or None, "detail": e.detail}
            for e in got.rows], got.cursor

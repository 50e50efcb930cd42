"""Flows and their versions: drafts change, published versions never do.

Lifecycle: draft -> published -> archived. Only a draft can be edited;
publishing validates the draft fully for its boards and snapshots it as the
next version. Restoring version v (seed 002) publishes a copy of it as the
next version, `restored_from: v`, validated like any publish; with
`publish: false` it only makes v's content the draft, for editing first.
Versions are never touched, so a restore can itself be undone by restoring
the version before it.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache

from shared_schema.boards import board_names
from shared_schema.diff import diff_definitions
from shared_schema.models import draft_problems, normalize_type
from shared_schema.validate import validate_flow

from cloud import schemas
from cloud.db import get_or_404, tag_match
from cloud.errors import Conflict, Invalid, NotFound, Problem
from cloud.models import Deployment, Flow, FlowVersion
from cloud.store import paging
from cloud.timefmt import iso

CONTENT_KEYS = ("definition", "steps", "variables")
ACTIVE_DEPLOYMENTS = ("pending", "running", "paused")


def _content(body: dict) -> dict:
    return {k: body[k] for k in CONTENT_KEYS if k in body}


def _board_problems(boards, pointer: str) -> list[Problem]:
    known = board_names()
    return [Problem(f"{pointer}/{i}", f"unknown board {b!r}; boards: {', '.join(known)}")
            for i, b in enumerate(boards or []) if b not in known]


def _check_boards(boards, pointer: str) -> None:
    bad = _board_problems(boards, pointer)
    if bad:
        raise Invalid("unknown board", bad)


def _parse_flow_body(model, body: dict, with_content: bool):
    """The flow's fields (FlowMeta/FlowPatch), with every problem of the body
    at once: its fields, its content's shape, its boards."""
    problems = []
    try:
        meta = schemas.parse(model, body)
    except Invalid as exc:
        meta, problems = None, list(exc.problems)
    if with_content:
        problems += [Problem(p.pointer, p.message) for p in draft_problems(_content(body))]
    if meta is not None:
        problems += _board_problems(meta.boards, "/boards")
    if problems:
        raise Invalid("the flow has problems", problems)
    return meta


def used_types(content: dict) -> list[str]:
    """The node types a flow body uses."""
    types = set()
    definition = content.get("definition")
    if isinstance(definition, dict):
        for node in definition.get("nodes") or []:
            if isinstance(node, dict) and isinstance(node.get("type"), str):
                types.add(normalize_type(node["type"]))
    for step in content.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("node"), str):
            types.add(normalize_type(step["node"]))
    return sorted(types)


def flow_doc(flow: Flow) -> dict:
    doc = {
        "id": flow.id, "name": flow.name, "description": flow.description, "tags": flow.tags,
        "status": flow.status, "version": flow.version or None, "boards": flow.boards,
        "restored_from": flow.restored_from,
        "created_at": iso(flow.created_at), "updated_at": iso(flow.updated_at),
    }
    doc.update(flow.body)
    return doc


def _get(flow_id: str) -> Flow:
    return get_or_404(Flow, flow_id, "flow")


def _draft(flow_id: str) -> Flow:
    flow = _get(flow_id)
    if flow.status != "draft":
        raise Conflict(f"flow {flow_id} is {flow.status}: only drafts change; restore a version to make a new draft",
                       current_status=flow.status)
    return flow


def create_flow(body: dict, now: float) -> dict:
    meta = _parse_flow_body(schemas.FlowMeta, body, with_content=True)
    flow = Flow.create(id="flow_" + secrets.token_hex(6), name=meta.name, description=meta.description or "",
                       tags=meta.tags, body=_content(body), boards=meta.boards, created_at=now, updated_at=now)
    return flow_doc(flow)


def list_flows(status: str | None = None, tag: str | None = None, limit: int = paging.DEFAULT_LIMIT,
               cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of flows, oldest first; returns (documents, next cursor)."""
    query = Flow.select()
    if status:
        query = query.where(Flow.status == status)
    else:
        query = query.where(Flow.status != "archived")  # archived flows are hidden from default views
    if tag:
        query = query.where(tag_match(Flow.tags, tag))
    got = paging.page(query, "flows", (Flow.created_at, Flow.id), limit, cursor)
    docs = [flow_doc(f) for f in got.rows]
    return [d for d in docs if not tag or tag in d["tags"]], got.cursor


def get_flow(flow_id: str) -> dict:
    return flow_doc(_get(flow_id))


_FLOW_JSON_SQL: dict = {}
_META = ("id", "name", "description", "tags", "status", "version", "boards", "restored_from", "created_at",
         "updated_at")


def get_flow_json(flow_id: str) -> str:
    """`get_flow`'s document as JSON text, made without decoding the stored
    content and encoding it again: the document's own fields, then the
    content's keys spliced in from the stored JSON text (its keys,
    CONTENT_KEYS, never clash with them). The API's hottest read."""
    db = Flow._meta.database
    sql = _FLOW_JSON_SQL.get(db.param)
    if sql is None:
        fields = [Flow._meta.fields[n] for n in (*_META, "body")]
        sql = _FLOW_JSON_SQL[db.param] = (Flow.select(*fields).where(Flow.id == "").sql()[0])
    row = db.execute_sql(sql, (flow_id,)).fetchone()
    if row is None:
        raise NotFound(f"no flow {flow_id!r}")
    return _flow_json(tuple(row))


@lru_cache(maxsize=256)  # keyed by the whole stored row: a changed flow is a new key, never a stale answer
def _flow_json(row: tuple) -> str:
    (fid, name, description, tags, status, version, boards, restored_from, created_at, updated_at, body) = row
    head = json.dumps({
        "id": fid, "name": name, "description": description, "tags": json.loads(tags), "status": status,
        "version": version or None, "boards": None if boards is None else json.loads(boards),
        "restored_from": restored_from, "created_at": iso(created_at), "updated_at": iso(updated_at)})
    return head if body == "{}" else f"{head[:-1]}, {body[1:]}"


def update_flow(flow_id: str, body: dict, now: float) -> dict:
    """PUT replaces the fields it carries; the content (definition or steps,
    variables) is replaced as a whole when any of it is present."""
    flow = _draft(flow_id)
    replaces_content = any(k in body for k in CONTENT_KEYS)
    meta = _parse_flow_body(schemas.FlowPatch, body, with_content=replaces_content)
    if replaces_content:
        flow.body = _content(body)
        if flow.restored_from is not None and flow.body != get_version(flow_id, flow.restored_from).body:
            flow.restored_from = None  # edited after a restore: no longer a copy of that version
    if meta.name is not None:
        flow.name = meta.name
    if "description" in body:
        flow.description = meta.description or ""
    if "tags" in body:
        flow.tags = meta.tags
    if "boards" in body:
        flow.boards = meta.boards
    flow.updated_at = now
    flow.save()
    return flow_doc(flow)


def delete_flow(flow_id: str) -> None:
    _get(flow_id)
    active = [d.id for d in Deployment.select(Deployment.id).where(
        (Deployment.flow == flow_id) & (Deployment.status.in_(ACTIVE_DEPLOYMENTS)))]
    if active:
        raise Conflict(f"flow {flow_id} is used by deployments still in progress: {', '.join(active)}",
                       deployments=active)
    FlowVersion.delete().where(FlowVersion.flow == flow_id).execute()
    Flow.delete().where(Flow.id == flow_id).execute()


def _validate_for(content: dict, boards: list[str] | None) -> tuple[list[str], list[Problem]]:
    """(boards it fits, problems) for the declared boards, or for every board
    when none are declared (then it is enough to fit one)."""
    candidates = boards or board_names()
    fits, found = [], {}
    for board in candidates:
        problems = validate_flow(content, board)
        if not problems:
            fits.append(board)
        for p in problems:
            found.setdefault((p.pointer, p.message), []).append(board)
    failed = len(fits) < len(candidates) if boards else not fits
    if not failed:
        return fits, []
    return fits, [Problem(ptr, msg, tuple(bs)) for (ptr, msg), bs in found.items()]


def check_flow(body: dict) -> dict:
    """What publishing would say of this content (definition or steps, and
    variables), saving nothing: for an editor that shows problems as they
    are made. `boards`: those to fit, else any one board will do."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    boards = body.get("boards")
    if boards is not None and not (isinstance(boards, list) and all(isinstance(b, str) for b in boards)):
        raise Invalid("bad boards", [Problem("/boards", "must be a list of board names")])
    _check_boards(boards, "/boards")
    content = _content(body)
    shape = [Problem(p.pointer, p.message) for p in draft_problems(content)]
    if not shape and not content.get("definition") and not content.get("steps"):
        shape = [Problem("/definition", "a flow needs a definition (graph form) or steps (step form)")]
    fits, problems = ([], shape) if shape else _validate_for(content, boards)
    return {"valid": not problems and bool(fits), "boards": fits, "types": used_types(content),
            "problems": [p.as_dict() for p in problems]}


def publish_flow(flow_id: str, body: dict | None, now: float) -> dict:
    req = schemas.parse(schemas.Publish, body or {})
    _check_boards(req.boards, "/boards")
    flow = _draft(flow_id)
    boards = req.boards or flow.boards
    fits, problems = _validate_for(flow.body, boards)
    if problems or not fits:
        where = f"board(s) {', '.join(boards)}" if boards else "any board"
        raise Invalid(f"flow {flow_id} cannot be published: it does not validate for {where}", problems)
    _snapshot(flow, flow.body, fits, flow.restored_from, now)
    return flow_doc(flow)


def _snapshot(flow: Flow, body: dict, fits: list[str], restored_from: int | None, now: float) -> FlowVersion:
    """The next version of `flow`, holding `body`; the flow becomes published
    with that content."""
    flow.version += 1
    row = FlowVersion.create(flow=flow.id, version=flow.version, name=flow.name, body=body, boards=fits,
                             types=used_types(body), restored_from=restored_from, created_at=now)
    flow.body = body
    flow.status = "published"
    flow.restored_from = None
    flow.updated_at = now
    flow.save()
    return row


def archive_flow(flow_id: str, now: float) -> dict:
    flow = _get(flow_id)
    if flow.status == "archived":
        raise Conflict(f"flow {flow_id} is already archived", current_status=flow.status)
    flow.status = "archived"
    flow.updated_at = now
    flow.save()
    return flow_doc(flow)


def version_doc(v: FlowVersion, full: bool = False) -> dict:
    doc = {"flow_id": v.flow, "version": v.version, "name": v.name, "boards": v.boards, "types": v.types,
           "restored_from": v.restored_from, "created_at": iso(v.created_at), "quarantined": v.quarantined}
    if full:
        doc.update(v.body)
    return doc


def quarantine_text(fv: FlowVersion) -> str:
    q = fv.quarantined or {}
    by = f" (deployment {q['deployment_id']})" if q.get("deployment_id") else ""
    return f"{q.get('reason') or 'no reason given'}{by}"


def quarantine_version(flow_id: str, version: int, reason: str, now: float, deployment_id: str | None = None) -> bool:
    """Mark a version quarantined (once: the first reason stays). True if it was not already."""
    q = {"reason": reason[:500], "deployment_id": deployment_id, "at": iso(now)}
    return bool(FlowVersion.update(quarantined=q)
                .where((FlowVersion.flow == flow_id) & (FlowVersion.version == version)
                       & FlowVersion.quarantined.is_null()).execute())


def list_versions(flow_id: str, limit: int = paging.DEFAULT_LIMIT,
                  cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a flow's versions, oldest first."""
    _get(flow_id)
    got = paging.page(FlowVersion.select().where(FlowVersion.flow == flow_id), "versions", (FlowVersion.version,),
                      limit, cursor)
    return [version_doc(v) for v in got.rows], got.cursor


def get_version(flow_id: str, version: int) -> FlowVersion:
    _get(flow_id)
    row = FlowVersion.get_or_none((FlowVersion.flow == flow_id) & (FlowVersion.version == version))
    if row is None:
        raise NotFound(f"flow {flow_id} has no version {version}")
    return row


def version(flow_id: str, number: int) -> dict:
    return version_doc(get_version(flow_id, number), full=True)


def quarantine(flow_id: str, number: int, body: dict | None, now: float, who: str = "") -> dict:
    """Quarantine a version by hand (POST .../quarantine {reason})."""
    req = schemas.parse(schemas.Quarantine, body or {})
    get_version(flow_id, number)
    if not quarantine_version(flow_id, number, req.reason + (f" (by {who})" if who else ""), now):
        raise Conflict(f"version {number} of flow {flow_id} is already quarantined: "
                       f"{quarantine_text(get_version(flow_id, number))}")
    return version_doc(get_version(flow_id, number))


def lift_quarantine(flow_id: str, number: int) -> dict:
    """Un-quarantine a version: "latest" may resolve to it again, and it deploys without force."""
    fv = get_version(flow_id, number)
    if fv.quarantined is None:
        raise Conflict(f"version {number} of flow {flow_id} is not quarantined")
    FlowVersion.update(quarantined=None).where(FlowVersion.id == fv.id).execute()
    return version_doc(get_version(flow_id, number))


def compare_versions(flow_id: str, v1: int, v2: int) -> dict:
    a, b = get_version(flow_id, v1), get_version(flow_id, v2)
    return {"flow_id": flow_id, "v1": v1, "v2": v2, **diff_definitions(a.body, b.body)}


def restore_version(flow_id: str, number: int, body: dict | None, now: float) -> dict:
    """Version `number` made current again. By default (`publish: true`) a
    copy of it is published at once as the next version, `restored_from`
    number: validated and compiled for the flow's boards like any publish,
    so a version that no longer fits them creates nothing (422, with the
    problems' pointers). The answer is the new version, in full.

    With `publish: false` the draft becomes a copy of it instead (an
    unpublished draft is replaced); publishing that draft later makes the
    version. The answer is then the flow."""
    req = schemas.parse(schemas.Restore, body or {})
    old = get_version(flow_id, number)
    flow = _get(flow_id)
    if not req.publish:
        flow.body = old.body
        flow.status = "draft"
        flow.restored_from = number
        flow.updated_at = now
        flow.save()
        return flow_doc(flow)
    if flow.status == "archived":
        raise Conflict(f"flow {flow_id} is archived: restoring a version would publish it again",
                       current_status=flow.status)
    if flow.status == "draft" and flow.version and flow.body != _latest(flow).body:
        raise Conflict(f"flow {flow_id} has unpublished draft changes that publishing a restore would lose: "
                       "publish the draft first, or restore with {\"publish\": false} to replace it",
                       current_status=flow.status)
    fits, problems = _validate_for(old.body, flow.boards)
    if problems or not fits:
        where = f"board(s) {', '.join(flow.boards)}" if flow.boards else "any board"
        raise Invalid(f"version {number} of flow {flow_id} cannot be restored: it no longer validates for {where}",
                      problems)
    return version_doc(_snapshot(flow, old.body, fits, number, now), full=True)


def _latest(flow: Flow) -> FlowVersion:
    return FlowVersion.get((FlowVersion.flow == flow.id) & (FlowVersion.version == flow.version))

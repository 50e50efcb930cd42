"""What each API route answers, as JSON Schema for the OpenAPI document
(cloud/routes.py puts them under each operation's success status).

Written from the documents the store builds (`flow_doc`, `device_doc`,
`deployment_doc`, ...), not generated from tables. Objects allow fields
beyond those listed (a newer cloud may say more; a flow carries its
definition's own fields), but every listed field has its type, `null`
included where the API sends null. tests/cloud/test_openapi_fuzz.py checks
real answers against them with schemathesis, and that every route has one.
"""

from __future__ import annotations

from cloud.engine import execution as exec_core
from cloud.engine import pipeline as pipeline_core
from cloud.engine import state as rollout_core

NULL = {"type": "null"}
STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
ANY_OBJ = {"type": "object"}
TIME = {"type": ["string", "null"], "description": "ISO 8601 UTC time, e.g. 2026-11-28T04:45:01.367Z"}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, NULL]}


def obj(required: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}}


def arr(items: dict) -> dict:
    return {"type": "array", "items": items}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def page(key: str, item: str, **extra) -> dict:
    """A paged list: `{key: [...], next: link or null}` (cloud.views.common.paged)."""
    return obj({key: arr(ref(item)), "next": nullable(STR), **extra})


STRS = arr(STR)
COUNTS = {"type": "object", "additionalProperties": INT}

SCHEMAS: dict[str, dict] = {
    "Flow": obj({"id": STR, "name": STR, "description": nullable(STR), "tags": STRS,
                 "status": {"enum": ["draft", "published", "archived"]}, "version": nullable(INT),
                 "boards": nullable(STRS), "restored_from": nullable(INT), "created_at": TIME, "updated_at": TIME},
                # a draft keeps what it was given, null included
                {"definition": nullable(ANY_OBJ), "steps": nullable(arr(ANY_OBJ)), "variables": nullable(arr(ANY_OBJ))}),
    "FlowVersion": obj({"flow_id": STR, "version": INT, "name": STR, "boards": STRS, "types": STRS,
                        "restored_from": nullable(INT), "created_at": TIME},
                       {"quarantined": nullable(ANY_OBJ), "definition": nullable(ANY_OBJ), "steps": nullable(arr(ANY_OBJ))}),
    "Diff": obj({"flow_id": STR, "v1": INT, "v2": INT, "same": BOOL,
                 "nodes": obj({"added": arr(ANY_OBJ), "removed": arr(ANY_OBJ), "changed": arr(ANY_OBJ)}),
                 "connections": obj({"added": arr(ANY_OBJ), "removed": arr(ANY_OBJ)}),
                 "variables": obj({"added": arr(ANY_OBJ), "removed": arr(ANY_OBJ), "changed": arr(ANY_OBJ)})}),
    "Device": obj({"id": STR, "device_id": STR, "name": STR, "board": STR, "tags": STRS,
                   "environment": nullable(STR), "online": BOOL,
                   "state": {"enum": ["online", "offline", "never_seen"]}, "last_seen": TIME, "created_at": TIME,
                   "types": nullable(STRS), "health": nullable(ANY_OBJ), "fw": nullable(STR),
                   "slot": nullable(STR), "flow": nullable(STR), "ver": nullable(INT), "seq": nullable(INT),
                   "trial": nullable(BOOL), "heap": nullable(INT), "nt_hash": nullable(STR),
                   "reset": nullable(STR), "time_synced": nullable(BOOL), "clock_skew_s": nullable(NUM)}),
    "ProvisionedDevice": {"allOf": [ref("Device"), obj({"credentials": obj({
        "mqtt": obj({"host": STR, "port": INT, "username": STR, "password": STR, "client_id": STR, "prefix": STR},
                    {"ca": STR}),
        "hmac_key": STR})})]},
    "Run": obj({"run": INT, "flow": nullable(STR), "ver": nullable(INT), "exec": nullable(STR),
                "trigger": nullable(STR), "status": STR, "err": nullable(STR), "t_ms": nullable(INT), "us": INT,
                "logs": nullable(arr({"type": "array"})), "nodes": arr(ref("NodeRun")), "received_at": TIME}),
    "NodeRun": obj({"id": STR, "type": nullable(STR), "us": INT, "port": nullable(INT), "out": {},
                    "err": nullable(STR)}),
    "Deployment": obj({"id": STR, "flow_id": STR, "version": INT,
                       "strategy": {"enum": ["all_at_once", "rolling", "canary", "blue_green"]},
                       "status": {"enum": list(rollout_core.DEPLOYMENT_STATUSES)},
                       "phase": nullable(STR), "batch": nullable(INT), "config": ANY_OBJ, "settings": ANY_OBJ,
                       "targets_selector": {}, "total_targets": INT, "completed_targets": INT,
                       "failed_targets": INT, "counts": COUNTS, "reason": nullable(STR), "created_at": TIME,
                       "started_at": TIME, "finished_at": TIME, "targets_url": STR,
                       "rehearsal": nullable(obj({"status": {"enum": ["pending", "running", "passed", "failed", "off"]}},
                                                 {"runs": nullable(INT), "reason": nullable(STR)})),
                       "rate_per_minute": nullable(NUM)},
                      {"targets": arr(ref("Target"))}),
    "Target": obj({"device_id": STR, "status": {"enum": list(rollout_core.TARGET_STATUSES)},
                   "batch": INT, "board": nullable(STR), "step": nullable(STR), "ack": nullable(STR),
                   "seq": nullable(INT), "reason": nullable(STR), "updated_at": TIME}),
    "DeploymentEvent": obj({"at": TIME, "kind": STR, "device_id": nullable(STR), "detail": {}}),
    "Execution": obj({"id": STR, "flow_id": STR, "version": INT,
                      "status": {"enum": list(exec_core.STATUSES)},
                      "pipeline_run": nullable(STR), "overrides": ANY_OBJ, "timeout": NUM, "retry_of": nullable(STR),
                      "created_at": TIME, "started_at": TIME, "finished_at": TIME, "targets_url": STR},
                     {"total_targets": INT, "counts": COUNTS, "targets": arr(ref("ExecTarget"))}),
    "ExecTarget": obj({"device_id": STR, "status": STR, "run": nullable(INT), "reason": nullable(STR),
                       "finished_at": TIME, "record": nullable(ANY_OBJ)}),
    "Pipeline": obj({"id": STR, "name": STR, "description": nullable(STR),
                     "steps": arr(obj({"flow_id": STR, "flow_name": STR, "on_failure": {"enum": ["stop", "continue"]}})),
                     "targets": ANY_OBJ, "use_count": INT, "last_used_at": TIME, "created_at": TIME,
                     "runs": obj({"total": INT, "completed": INT, "failed": INT, "running": INT})}),
    "PipelineRun": obj({"id": STR, "pipeline_id": STR, "status": {"enum": list(pipeline_core.RUN_STATUSES)},
                        "current_step": nullable(INT), "triggered_by": nullable(STR), "created_at": TIME,
                        "started_at": TIME, "completed_at": TIME,
                        "steps_snapshot": arr(obj({"step_index": INT, "flow_id": STR, "status": STR,
                                                   "execution_id": nullable(STR), "error": nullable(STR),
                                                   "started_at": TIME, "completed_at": TIME}))}),
    "Webhook": obj({"id": INT, "url": STR, "events": STRS, "active": BOOL, "created_at": TIME}),
    "Delivery": obj({"id": INT, "webhook_id": INT, "event": STR, "status": {"enum": ["pending", "delivered", "dead"]},
                     "attempts": INT, "last_error": nullable(STR), "next_at": TIME, "created_at": TIME,
                     "delivered_at": TIME, "payload": {}}),
    "Key": obj({"id": INT, "name": STR, "role": {"enum": ["admin", "operator", "viewer"]}, "prefix": STR,
                "created_at": TIME, "revoked": BOOL}),
    "User": obj({"id": INT, "email": STR, "role": {"enum": ["admin", "operator", "viewer"]}, "created_at": TIME}),
    "Session": obj({"user": ref("User"), "csrf_token": STR, "expires_at": TIME, "refresh_expires_at": TIME,
                    "access_token": STR}),
}

_FLOW, _DEVICE, _DEP, _EXE = ref("Flow"), ref("Device"), ref("Deployment"), ref("Execution")
_PIPE, _RUN = ref("Pipeline"), ref("PipelineRun")

# (method, path below /api/v1) -> the success answer's schema; None: no body (204).
RESPONSES: dict[tuple[str, str], dict | None] = {
    ("POST", "/flows"): _FLOW,
    ("GET", "/flows"): page("flows", "Flow"),
    ("POST", "/flows/validate"): obj({"valid": BOOL, "boards": STRS, "types": STRS,
                                      "problems": arr(obj({"pointer": STR, "message": STR}, {"boards": STRS}))}),
    ("GET", "/flows/{flow_id}"): _FLOW,
    ("PUT", "/flows/{flow_id}"): _FLOW,
    ("DELETE", "/flows/{flow_id}"): None,
    ("POST", "/flows/{flow_id}/publish"): _FLOW,
    ("POST", "/flows/{flow_id}/archive"): _FLOW,
    ("GET", "/flows/{flow_id}/versions"): page("versions", "FlowVersion", flow_id=STR),
    ("GET", "/flows/{flow_id}/versions/compare"): ref("Diff"),
    ("GET", "/flows/{flow_id}/versions/{version}"): ref("FlowVersion"),
    ("POST", "/flows/{flow_id}/versions/{version}/restore"): {"anyOf": [ref("FlowVersion"), _FLOW]},
    ("POST", "/flows/{flow_id}/versions/{version}/quarantine"): ref("FlowVersion"),
    ("DELETE", "/flows/{flow_id}/versions/{version}/quarantine"): ref("FlowVersion"),
    ("POST", "/devices"): ref("ProvisionedDevice"),
    ("GET", "/devices"): page("devices", "Device"),
    ("GET", "/devices/{device_id}"): _DEVICE,
    ("PATCH", "/devices/{device_id}"): _DEVICE,
    ("DELETE", "/devices/{device_id}"): None,
    ("GET", "/devices/{device_id}/runs"): page("runs", "Run", device_id=STR),
    ("POST", "/deployments"): _DEP,
    ("GET", "/deployments"): page("deployments", "Deployment"),
    ("GET", "/deployments/{deployment_id}"): _DEP,
    ("GET", "/deployments/{deployment_id}/targets"): page("targets", "Target", deployment_id=STR),
    ("GET", "/deployments/{deployment_id}/events"): page("events", "DeploymentEvent", deployment_id=STR),
    ("GET", "/deployments/{deployment_id}/stream"): "text/event-stream",
    ("GET", "/executions/{execution_id}/stream"): "text/event-stream",
    ("GET", "/devices/{device_id}/stream"): "text/event-stream",
    ("GET", "/pipelines/{pipeline_id}/stream"): "text/event-stream",
    ("GET", "/streams/fleet"): "text/event-stream",
    ("POST", "/deployments/{deployment_id}/start"): _DEP,
    ("POST", "/deployments/{deployment_id}/pause"): _DEP,
    ("POST", "/deployments/{deployment_id}/resume"): _DEP,
    ("POST", "/deployments/{deployment_id}/rollback"): _DEP,
    ("POST", "/deployments/{deployment_id}/cancel"): _DEP,
    ("POST", "/executions"): _EXE,
    ("GET", "/executions"): page("executions", "Execution"),
    ("GET", "/executions/{execution_id}"): _EXE,
    ("GET", "/executions/{execution_id}/targets"): page("targets", "ExecTarget", execution_id=STR),
    ("POST", "/executions/{execution_id}/cancel"): _EXE,
    ("POST", "/executions/{execution_id}/retry"): _EXE,
    ("POST", "/executions/{execution_id}/replay"): _EXE,
    ("POST", "/pipelines"): _PIPE,
    ("GET", "/pipelines"): page("pipelines", "Pipeline"),
    ("GET", "/pipelines/runs"): page("runs", "PipelineRun"),
    ("GET", "/pipelines/run"): page("runs", "PipelineRun"),
    ("POST", "/pipelines/run"): _RUN,  # 201 when it starts a run, 200 for advance and cancel
    ("POST", "/pipelines/{pipeline_id}/runs/{run_id}/advance"): _RUN,
    ("GET", "/pipelines/{pipeline_id}"): _PIPE,
    ("PATCH", "/pipelines/{pipeline_id}"): _PIPE,
    ("DELETE", "/pipelines/{pipeline_id}"): None,
    ("POST", "/pipelines/{pipeline_id}/runs"): _RUN,
    ("GET", "/pipelines/{pipeline_id}/runs"): page("runs", "PipelineRun", pipeline_id=STR),
    ("GET", "/pipelines/{pipeline_id}/runs/{run_id}"): _RUN,
    ("POST", "/pipelines/{pipeline_id}/runs/{run_id}/cancel"): _RUN,
    ("POST", "/webhooks"): {"allOf": [ref("Webhook"), obj({"secret": STR})]},
    ("GET", "/webhooks"): page("webhooks", "Webhook"),
    ("DELETE", "/webhooks/{webhook_id}"): None,
    ("GET", "/webhooks/{webhook_id}/deliveries"): page("deliveries", "Delivery"),
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): ref("Delivery"),
    ("GET", "/auth/status"): obj({"has_users": BOOL}),
    ("POST", "/auth/register"): ref("Session"),
    ("POST", "/auth/login"): ref("Session"),
    ("POST", "/auth/refresh"): ref("Session"),
    ("POST", "/auth/logout"): None,
    ("POST", "/auth/password"): obj({"user": ref("User")}),
    ("GET", "/auth/me"): obj({"user": nullable(ref("User"))},
                             {"key": obj({"id": INT, "role": STR, "by": STR}), "expires_at": TIME,
                              "refresh_expires_at": TIME}),
    ("GET", "/users"): page("users", "User"),
    ("POST", "/users"): obj({"user": ref("User")}),
    ("PATCH", "/users/{user_id}"): obj({"user": ref("User")}),
    ("DELETE", "/users/{user_id}"): None,
    ("POST", "/keys"): {"allOf": [ref("Key"), obj({"key": STR})]},
    ("GET", "/keys"): page("keys", "Key"),
    ("POST", "/keys/{key_id}/revoke"): ref("Key"),
}

# One server-sent event of a stream (cloud/streams.py, cloud/views/streams.py): `data` is a JSON text.
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "event": STR,  # metadata, sync, update, error, complete; a device's status, health, runs; the fleet's device, deployment
    "data": STR, "id": STR, "retry": INT}}

# Answers with a second success status besides the route's own.
ALSO = {("POST", "/pipelines/run"): "201"}

PROBLEM = obj({"type": STR, "title": STR, "status": INT},
              {"detail": STR, "instance": STR,
               "errors": arr(obj({"pointer": STR, "message": STR}, {"boards": STRS}))})

# The errors a route may answer besides its success, each a problem+json
# document (cloud/middleware.py): 400 unreadable JSON, 401 no or bad
# credentials, 403 role too low, 404 no such thing, 405 wrong method,
# 409 state forbids it, 413 body too large, 415 not JSON, 422 invalid
# (pointers), 429 rate limited, 502 the broker refused (provisioning).
ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "415", "422")


def _enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


_WHOLE = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_DEP_STATUSES = _enum(*rollout_core.DEPLOYMENT_STATUSES)
_EXE_STATUSES = _enum(*exec_core.STATUSES)

# A parameter's schema by name (path or query), or by (path, name) where it
# differs per route; a name in neither is a string.
PARAMS: dict = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    ("/devices/{device_id}/runs", "limit"): {"type": "integer", "minimum": 1, "maximum": 500},
    "cursor": {"type": "string"},
    "v1": _WHOLE, "v2": _WHOLE, "version": _WHOLE,
    "webhook_id": _WHOLE, "delivery_id": _WHOLE, "key_id": _WHOLE, "user_id": _WHOLE,
    "level": _enum("debug", "info", "warning", "error"),
    "online": _enum("true", "false", "1", "0", "yes", "no"),
    ("/flows", "status"): _enum("draft", "published", "archived"),
    ("/deployments", "status"): _DEP_STATUSES,
    ("/deployments/{deployment_id}/targets", "status"): _enum(*rollout_core.TARGET_STATUSES),
    ("/executions", "status"): _EXE_STATUSES,
    ("/webhooks/{webhook_id}/deliveries", "status"): _enum("pending", "delivered", "dead"),
}


def param_schema(path: str, name: str) -> dict:
    return PARAMS.get((path, name)) or PARAMS.get(name) or {"type": "string"}

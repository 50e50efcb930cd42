"""Every API route in one table: the router and the OpenAPI document are
both built from it, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from shared_schema.models import FlowBody

from cloud import responses, schemas
from cloud.views import auth, deployments, devices, executions, flows, keys, pipelines, streams, users, webhooks

API = "/api/v1"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below /api/v1, aiohttp syntax: /flows/{flow_id}
    handler: object
    summary: str
    tag: str
    body: type | None = None  # pydantic model of the request body, for the document
    status: int = 200
    query: tuple[str, ...] = ()


ROUTES = [
    Route("POST", "/flows", flows.create, "Create a flow (a draft)", "flows", schemas.FlowMeta, 201),
    Route("GET", "/flows", flows.list_, "List flows (archived ones only with ?status=archived)", "flows",
          query=("status", "tag", "limit", "cursor")),
    Route("POST", "/flows/validate", flows.check,
          "Check a flow's content as publishing would, saving nothing: valid, boards it fits, problems (any role)",
          "flows"),
    Route("GET", "/flows/{flow_id}", flows.get, "Get a flow", "flows"),
    Route("PUT", "/flows/{flow_id}", flows.update, "Update a draft", "flows", schemas.FlowPatch),
    Route("DELETE", "/flows/{flow_id}", flows.delete, "Delete a flow (409 while a deployment uses it)", "flows",
          status=204),
    Route("POST", "/flows/{flow_id}/publish", flows.publish, "Validate the draft and publish it as a new version",
          "flows", schemas.Publish),
    Route("POST", "/flows/{flow_id}/archive", flows.archive, "Archive a flow", "flows"),
    Route("GET", "/flows/{flow_id}/versions", flows.versions, "List a flow's versions", "versions"),
    Route("GET", "/flows/{flow_id}/versions/compare", flows.compare, "Compare two versions node by node",
          "versions", query=("v1", "v2")),
    Route("GET", "/flows/{flow_id}/versions/{version}", flows.version, "Get one version in full", "versions"),
    Route("POST", "/flows/{flow_id}/versions/{version}/restore", flows.restore,
          "Publish a copy of a version as the next one ({\"publish\": false}: make it the draft instead)",
          "versions", schemas.Restore),
    Route("POST", "/flows/{flow_id}/versions/{version}/quarantine", flows.quarantine,
          "Quarantine a version by hand: \"latest\" skips it and deploying it needs force", "versions",
          schemas.Quarantine),
    Route("DELETE", "/flows/{flow_id}/versions/{version}/quarantine", flows.lift_quarantine,
          "Lift a version's quarantine", "versions"),
    Route("POST", "/devices", devices.provision, "Provision a device; its credentials are shown once", "devices",
          schemas.Provision, 201),
    Route("GET", "/devices", devices.list_,
          "List devices with their live state: search, filters, sort (ids in natural order), paged", "devices",
          query=("q", "tag", "environment", "board", "online", "flow", "version", "trial", "sort", "limit", "cursor")),
    Route("GET", "/devices/{device_id}", devices.get, "Get a device with its live state", "devices"),
    Route("PATCH", "/devices/{device_id}", devices.update, "Change a device's name, tags or environment",
          "devices", schemas.DevicePatch),
    Route("DELETE", "/devices/{device_id}", devices.delete, "Forget a device", "devices", status=204),
    Route("GET", "/devices/{device_id}/runs", devices.runs, "The device's latest run records, per node",
          "devices", query=("limit", "cursor",)),
    Route("POST", "/deployments", deployments.create,
          "Create a deployment (compiled and checked, not started); ?dry_run=true: only its pre-flight",
          "deployments", schemas.DeploymentCreate, 201, query=("dry_run",)),
    Route("GET", "/deployments", deployments.list_, "List deployments, newest first, with their counts", "deployments",
          query=("status", "flow_id", "device_id", "limit", "cursor")),
    Route("GET", "/deployments/{deployment_id}", deployments.get,
          "Get a deployment with its counts (and its targets when it has at most 1,000)", "deployments"),
    Route("GET", "/deployments/{deployment_id}/targets", deployments.targets, "A deployment's targets, in order",
          "deployments", query=("status", "limit", "cursor")),
    Route("GET", "/deployments/{deployment_id}/events", deployments.events, "What happened, in order",
          "deployments", query=("limit", "cursor")),
    Route("GET", "/deployments/{deployment_id}/stream", deployments.stream,
          "Live server-sent events: metadata, update, sync, error, complete", "deployments"),
    Route("POST", "/deployments/{deployment_id}/start", deployments.start, "Start", "deployments"),
    Route("POST", "/deployments/{deployment_id}/pause", deployments.pause, "Pause (in-flight targets finish)",
          "deployments"),
    Route("POST", "/deployments/{deployment_id}/resume", deployments.resume, "Resume", "deployments"),
    Route("POST", "/deployments/{deployment_id}/rollback", deployments.rollback, "Roll every updated target back",
          "deployments", schemas.RollbackBody),
    Route("POST", "/deployments/{deployment_id}/cancel", deployments.cancel, "Stop without reverting",
          "deployments"),
    Route("POST", "/executions", executions.create, "Run a flow version once on devices, with overrides",
          "executions", schemas.ExecutionCreate, 201),
    Route("GET", "/executions", executions.list_, "List executions", "executions",
          query=("flow_id", "status", "limit", "cursor")),
    Route("GET", "/executions/{execution_id}", executions.get,
          "An execution with each device's run: node timings, outputs, errors, logs (?level= filters)",
          "executions", query=("level",)),
    Route("GET", "/executions/{execution_id}/targets", executions.targets,
          "An execution's targets in order, each with its run record", "executions", query=("level", "limit", "cursor")),
    Route("GET", "/executions/{execution_id}/stream", streams.execution,
          "Live server-sent events: metadata, update (status, targets with their node log), complete",
          "executions", query=("level",)),
    Route("GET", "/devices/{device_id}/stream", streams.device,
          "Live server-sent events of one device: metadata, status, health, runs", "devices"),
    Route("GET", "/pipelines/{pipeline_id}/stream", streams.pipeline,
          "Live server-sent events of a pipeline: metadata (latest runs), run (a run started, moved or ended), "
          "pipeline (edited), deleted",
          "pipelines"),
    Route("GET", "/streams/fleet", streams.fleet,
          "Live server-sent events of the fleet: metadata, device (status, online), deployment (state)", "streams"),
    Route("POST", "/executions/{execution_id}/cancel", executions.cancel, "Cancel", "executions"),
    Route("POST", "/executions/{execution_id}/retry", executions.retry,
          "Run again on the devices that did not complete", "executions", status=201),
    Route("POST", "/executions/{execution_id}/replay", executions.replay, "Run again on every device",
          "executions", status=201),
    Route("POST", "/pipelines", pipelines.create, "Create a pipeline: two or more flows run in order", "pipelines",
          schemas.PipelineCreate, 201),
    Route("GET", "/pipelines", pipelines.list_, "List pipelines with their run counters", "pipelines",
          query=("limit", "cursor",)),
    Route("GET", "/pipelines/runs", pipelines.all_runs, "Recent runs of every pipeline, newest first", "pipelines",
          query=("status", "limit", "cursor")),
    Route("GET", "/pipelines/run", pipelines.seed_runs, "Seed 003's name for /pipelines/runs", "pipelines",
          query=("status", "limit", "cursor")),
    Route("POST", "/pipelines/run", pipelines.seed_run,
          "Seed 003's run endpoint: action start (pipeline_id), advance (run_id, success) or cancel (run_id)",
          "pipelines", schemas.SeedRunAction),
    Route("GET", "/pipelines/{pipeline_id}", pipelines.get, "Get a pipeline", "pipelines"),
    Route("PATCH", "/pipelines/{pipeline_id}", pipelines.update,
          "Change a pipeline's name, description, steps or targets (409 while it runs)", "pipelines",
          schemas.PipelinePatch),
    Route("DELETE", "/pipelines/{pipeline_id}", pipelines.delete, "Delete a pipeline (409 while it runs)",
          "pipelines", status=204),
    Route("POST", "/pipelines/{pipeline_id}/runs", pipelines.start, "Start a run", "pipelines", status=201),
    Route("GET", "/pipelines/{pipeline_id}/runs", pipelines.runs, "Its runs, newest first", "pipelines",
          query=("status", "limit", "cursor",)),
    Route("GET", "/pipelines/{pipeline_id}/runs/{run_id}", pipelines.run, "One run with its step snapshot",
          "pipelines"),
    Route("POST", "/pipelines/{pipeline_id}/runs/{run_id}/cancel", pipelines.cancel, "Cancel a run",
          "pipelines"),
    Route("POST", "/pipelines/{pipeline_id}/runs/{run_id}/advance", pipelines.advance,
          "End the current step by hand: success true (Step Done) or false (Step Failed)", "pipelines",
          schemas.RunAdvance),
    Route("POST", "/webhooks", webhooks.create, "Subscribe a URL to events; the signing secret is shown once (admin)",
          "webhooks", schemas.WebhookCreate, 201),
    Route("GET", "/webhooks", webhooks.list_, "List webhooks (admin)", "webhooks"),
    Route("DELETE", "/webhooks/{webhook_id}", webhooks.delete, "Remove a webhook (admin)", "webhooks", status=204),
    Route("GET", "/webhooks/{webhook_id}/deliveries", webhooks.deliveries,
          "Deliveries, dead letters included (?status=dead) (admin)", "webhooks", query=("status",)),
    Route("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", webhooks.redeliver,
          "Give a dead letter another round (admin)", "webhooks"),
    Route("GET", "/auth/status", auth.status, "Whether any user exists (no login needed)", "auth"),
    Route("POST", "/auth/register", auth.register,
          "Register the first user, who becomes admin; 403 once a user exists (no login needed)", "auth",
          schemas.Credentials, 201),
    Route("POST", "/auth/login", auth.login, "Log in: a session (cookies, and access_token for Bearer)", "auth",
          schemas.Credentials),
    Route("POST", "/auth/refresh", auth.refresh, "A new session token, until 7 days after logging in", "auth"),
    Route("POST", "/auth/logout", auth.logout, "End the session and clear its cookies", "auth", status=204),
    Route("GET", "/auth/me", auth.me, "Who is logged in (or which key is used)", "auth"),
    Route("POST", "/auth/password", auth.change_password,
          "Change your own password (the current one first); your other sessions end (any role)", "auth",
          schemas.PasswordChange),
    Route("GET", "/users", users.list_, "List users (admin)", "users", query=("limit", "cursor")),
    Route("POST", "/users", users.create, "Create a user with a role (admin)", "users", schemas.UserCreate, 201),
    Route("PATCH", "/users/{user_id}", users.update, "Change a user's role or password (admin)", "users",
          schemas.UserPatch),
    Route("DELETE", "/users/{user_id}", users.delete, "Delete a user and end their sessions (admin)", "users",
          status=204),
    Route("POST", "/keys", keys.create, "Create an API key (admin)", "keys", schemas.KeyCreate, 201),
    Route("GET", "/keys", keys.list_, "List API keys (admin)", "keys"),
    Route("POST", "/keys/{key_id}/revoke", keys.revoke, "Revoke an API key (admin)", "keys"),
]


STATIC = Path(__file__).parent / "static"
# Routes anyone may call: the document, and what a login page needs.
PUBLIC = {API + "/openapi.json", API + "/auth/status", API + "/auth/register", API + "/auth/login"}


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, API + route.path, route.handler)
    app.router.add_get(API + "/openapi.json", openapi_view)
    app.router.add_get("/", dashboard)
    app.router.add_get("/assets/{name}", dashboard_asset)


# The dashboard (cloud/ui, React + Vite): `make setup` builds it into
# cloud/ui/dist; until then `/` says how to build it (static/unbuilt.html).
UI_DIST = Path(__file__).parent / "ui" / "dist"


async def dashboard(request: web.Request):
    """The dashboard's page; it talks to the API like any client."""
    index = UI_DIST / "index.html"
    if not index.is_file():
        return web.FileResponse(STATIC / "unbuilt.html", status=503, headers={"Cache-Control": "no-store"})
    return web.FileResponse(index, headers={"Cache-Control": "no-cache"})


async def dashboard_asset(request: web.Request):
    """The built scripts and styles: content-hashed names, so cached for good."""
    name = request.match_info["name"]
    path = UI_DIST / "assets" / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})


def _params(route: Route) -> list[dict]:
    params = []
    for part in route.path.split("/"):
        if part.startswith("{"):
            params.append({"name": part[1:-1], "in": "path", "required": True,
                           "schema": responses.param_schema(route.path, part[1:-1])})
    for name in route.query:
        params.append({"name": name, "in": "query", "required": name in ("v1", "v2"),
                       "schema": responses.param_schema(route.path, name)})
    return params


REF_TEMPLATE = "#/components/schemas/{model}"


def _body_schema(model, components: dict) -> dict:
    """The request body's JSON Schema; the models it nests go to `components`
    (a pydantic `$defs` inside an operation would not resolve from the document's root)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    if model in (schemas.FlowMeta, schemas.FlowPatch):
        # The flow's content (definition or steps) is shared_schema's draft model.
        content = FlowBody.model_json_schema(ref_template=REF_TEMPLATE)
        components.update(content.pop("$defs", {}))
        for key in ("definition", "steps", "variables"):
            schema["properties"][key] = content["properties"][key]
    components.update(schema.pop("$defs", {}))
    return schema


def _ok(route: Route) -> dict:
    """The success answer of a route, from cloud/responses.py."""
    schema = responses.RESPONSES.get((route.method, route.path), {})
    if route.status == 204 or schema is None:
        return {"description": "Done: no content"}
    if schema == "text/event-stream":
        return {"description": "Server-sent events, one at a time", "content": {"text/event-stream": {
            "schema": responses.SSE_EVENT}}}
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def openapi() -> dict:
    problem = {"description": "Problem (RFC 9457)",
               "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    components: dict = dict(responses.SCHEMAS)
    paths: dict = {}
    for route in ROUTES:
        op = {"summary": route.summary, "tags": [route.tag], "operationId": f"{route.handler.__module__.rsplit('.', 1)[-1]}_"
              f"{route.handler.__name__.rstrip('_')}", "parameters": _params(route),
              "responses": {str(route.status): _ok(route), **{code: problem for code in responses.ERROR_STATUSES}}}
        if (route.method, route.path) in responses.ALSO:
            op["responses"][responses.ALSO[(route.method, route.path)]] = _ok(route)
        if route.path == "/devices" and route.method == "POST":
            op["responses"]["502"] = problem  # the broker refused the device's account
        if API + route.path in PUBLIC:
            op["security"] = []
        if route.body is not None:
            op["requestBody"] = {"required": route.body is not schemas.RollbackBody,
                                 "content": {"application/json": {"schema": _body_schema(route.body, components)}}}
        paths.setdefault(API + route.path, {})[route.method.lower()] = op
    paths[API + "/openapi.json"] = {"get": {"summary": "This document", "tags": ["meta"], "security": [],
                                            "operationId": "openapi", "responses": {"200": {
                                                "description": "OK", "content": {"application/json": {
                                                    "schema": {"type": "object", "required": ["openapi", "paths"]}}}}}}}
    components["Problem"] = responses.PROBLEM
    return {
        "openapi": "3.1.0",
        "info": {"title": "fleetflow cloud", "version": "1"},
        "security": [{"apiKey": []}, {"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                                "bearer": {"type": "http", "scheme": "bearer"},
                                # with X-CSRF-Token on POST/PUT/PATCH/DELETE (docs/api.md, Accounts)
                                "session": {"type": "apiKey", "in": "cookie", "name": "ff_session"}},
            "schemas": components,
        },
    }


async def openapi_view(request: web.Request):
    return web.json_response(openapi())

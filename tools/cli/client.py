"""A small synchronous client for the fleetflow cloud API (`/api/v1`).

Used by the CLI (`flow`, `devices`, `deploy`, `flash --cloud`) and the demo.
Standard library only, so it works from any script. Errors come back as one
`ApiError` carrying the HTTP status and the problem+json body (its `errors`
name the fields at fault).

Where to find the cloud: `--cloud URL` / `--api-key KEY` on the command line,
else FLEETFLOW_URL / FLEETFLOW_API_KEY, else http://127.0.0.1:8080 with no key.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080"
API_PATH = "/api/v1"


def base_url(url: str) -> str:
    """The cloud's base URL out of any of its API URLs (what precedes /api/v1)."""
    url = url.strip().rstrip("/")
    at = url.find(API_PATH + "/")
    if url.endswith(API_PATH) or at >= 0:
        return url[: at if at >= 0 else len(url) - len(API_PATH)]
    return url


class ApiError(Exception):
    """The cloud answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.body = body or {}

    def field_errors(self) -> list[str]:
        errs = self.body.get("errors") or []
        out = []
        for e in errs if isinstance(errs, list) else []:
            if isinstance(e, dict):
                out.append(f"{e.get('pointer', '')}: {e.get('message', e)}")
            else:
                out.append(str(e))
        return out


def parse_sse(lines):
    """(id, event, data) from server-sent event lines (bytes or str); comments skipped."""
    event_id, event, data = None, "message", []
    for raw in lines:
        line = (raw.decode() if isinstance(raw, bytes) else raw).rstrip("\r\n")
        if not line:
            if data:
                yield event_id, event, json.loads("\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = value
        elif field == "event":
            event = value
        elif field == "data":
            data.append(value)


class Client:
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout_s: float = 30):
        # The base URL; any URL of the API (…/api/v1, …/api/v1/deployments/dep_1,
        # as the CLI, the demo and the API's own links print them) is taken
        # too, so a printed URL works when pasted into --cloud.
        self.url = base_url(url or os.environ.get("FLEETFLOW_URL") or DEFAULT_URL)
        self.api_key = api_key if api_key is not None else os.environ.get("FLEETFLOW_API_KEY")
        self.timeout_s = timeout_s

    def api_url(self, path: str = "") -> str:
        return f"{self.url}{API_PATH}{path}"

    # -- transport -----------------------------------------------------------------

    def request(self, method: str, path: str, body=None, params: dict | None = None):
        url = self.api_url(path)
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("x-api-key", self.api_key)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                problem = json.loads(raw or b"{}")
            except ValueError:
                problem = {"detail": raw.decode(errors="replace")}
            if not isinstance(problem, dict):
                problem = {"detail": problem}
            message = problem.get("detail") or problem.get("title") or exc.reason
            raise ApiError(exc.code, str(message), problem) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"cannot reach the cloud at {self.url}: {reason}") from None
        return json.loads(raw) if raw else {}

    def stream(self, path: str, last_event_id: str | None = None, timeout_s: float = 60):
        """Server-sent events from `path`: yields (id, event, data) until the server ends the stream."""
        req = urllib.request.Request(self.api_url(path), headers={"Accept": "text/event-stream"})
        if self.api_key:
            req.add_header("x-api-key", self.api_key)
        if last_event_id:
            req.add_header("Last-Event-ID", last_event_id)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, str(exc.reason)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"cannot reach the cloud at {self.url}: {getattr(exc, 'reason', exc)}") from None
        with resp:
            yield from parse_sse(resp)

    def get(self, path, **params):
        return self.request("GET", path, params=params or None)

    def get_all(self, path: str, key: str, **params) -> list:
        """Every item of a paged list: follows each page's `next` link
        (`/api/v1/...?cursor=...`) until it is null."""
        body = self.get(path, **params)
        items = list(body[key])
        while body.get("next"):
            body = self.request("GET", body["next"].removeprefix("/api/v1"))
            items += body[key]
        return items

    def pages(self, path: str, key: str, **params):
        """Each page's items in turn, following `next` (for a list shown as it comes)."""
        body = self.get(path, **params)
        yield body[key]
        while body.get("next"):
            body = self.request("GET", body["next"].removeprefix(API_PATH))
            yield body[key]

    def post(self, path, body=None):
        return self.request("POST", path, {} if body is None else body)

    # -- flows -----------------------------------------------------------------------

    def list_flows(self, **params) -> list[dict]:
        return self.get_all("/flows", "flows", **params)

    def create_flow(self, flow: dict) -> dict:
        return self.post("/flows", flow)

    def get_flow(self, flow_id: str) -> dict:
        return self.get(f"/flows/{flow_id}")

    def update_flow(self, flow_id: str, flow: dict) -> dict:
        return self.request("PUT", f"/flows/{flow_id}", flow)

    def publish_flow(self, flow_id: str, boards: list[str] | None = None) -> dict:
        return self.post(f"/flows/{flow_id}/publish", {"boards": boards} if boards else {})

    def restore_version(self, flow_id: str, version: int, publish: bool = True) -> dict:
        """Publish a copy of that version as the flow's next one (the answer is
        the new version); with publish=False make it the draft instead, to edit
        before publishing (the answer is the flow)."""
        return self.post(f"/flows/{flow_id}/versions/{version}/restore", {"publish": publish})

    # -- devices ---------------------------------------------------------------------

    def list_devices(self, **params) -> list[dict]:
        return self.get_all("/devices", "devices", **params)

    def get_device(self, device_id: str) -> dict:
        return self.get(f"/devices/{device_id}")

    def provision_device(self, device_id: str | None = None, board: str = "unix-sim", **fields) -> dict:
        """Register a device; the answer holds its MQTT password and HMAC key, once."""
        body = {"board": board, **{k: v for k, v in fields.items() if v is not None}}
        if device_id:
            body["id"] = device_id
        return self.post("/devices", body)

    # -- deployments -----------------------------------------------------------------

    def create_deployment(self, body: dict) -> dict:
        return self.post("/deployments", body)

    def deployment(self, dep_id: str) -> dict:
        return self.get(f"/deployments/{dep_id}")

    def deployment_targets(self, dep_id: str, **params) -> list[dict]:
        return self.get_all(f"/deployments/{dep_id}/targets", "targets", **params)

    def deployment_events(self, dep_id: str) -> list[dict]:
        return self.get_all(f"/deployments/{dep_id}/events", "events")

    def list_deployments(self, **params) -> list[dict]:
        return self.get_all("/deployments", "deployments", **params)

    def deployment_action(self, dep_id: str, action: str) -> dict:
        if action not in ("start", "pause", "resume", "rollback", "cancel"):
            raise ValueError(f"unknown deployment action {action!r}")
        return self.post(f"/deployments/{dep_id}/{action}")


def credentials(answer: dict) -> dict:
    """Provisioning fields (tools.device.device_config) from `POST /devices`' answer:
    `{"id", ..., "credentials": {"mqtt": {host, port, username, password, prefix, ca}, "hmac_key"}}`
    (the credentials are in that answer only)."""
    creds = answer.get("credentials") or {}
    mqtt = creds.get("mqtt") or {}
    out = {
        "device_id": answer.get("id"),
        "mqtt_host": mqtt.get("host"),
        "mqtt_port": mqtt.get("port"),
        "mqtt_user": mqtt.get("username"),
        "mqtt_password": mqtt.get("password"),
        "mqtt_ca": mqtt.get("ca"),
        "key": creds.get("hmac_key"),
        "prefix": mqtt.get("prefix"),
    }
    return {k: v for k, v in out.items() if v is not None}


def add_cloud_args(parser) -> None:
    """--cloud / --api-key, the same on every command that talks to the API."""
    parser.add_argument("--cloud", metavar="URL", help=f"cloud base URL (env FLEETFLOW_URL, default {DEFAULT_URL})")
    parser.add_argument("--api-key", help="API key (env FLEETFLOW_API_KEY)")


def from_args(args) -> Client:
    return Client(getattr(args, "cloud", None), getattr(args, "api_key", None))


def call(args, prefix: str, fn):
    """`fn(client)`'s answer, or None once the cloud's error is printed
    (the command then exits 1)."""
    try:
        return fn(from_args(args))
    except ApiError as exc:
        print_error(exc, prefix)
        return None


def print_error(exc: ApiError, prefix: str = "fleetflow") -> None:
    import sys

    print(f"{prefix}: {exc}", file=sys.stderr)
    for line in exc.field_errors():
        print(f"  {line}", file=sys.stderr)
    if exc.status == 401:
        print("  give an API key with --api-key KEY or the FLEETFLOW_API_KEY environment variable "
              "(make one with `fleetflow keys create --role admin`)", file=sys.stderr)
    elif exc.status == 403:
        print("  this API key's role may not do that: use a key with a higher role", file=sys.stderr)

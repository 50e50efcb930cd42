"""The OpenAPI document describes what every route answers, and a bounded
schemathesis run against a live cloud finds no server error and no answer
that breaks its schema.

The run: a real cloud and broker (tools.infra.stack.Stack) holding a device, a
published flow, a deployment, an execution and a pipeline run, whose ids are
the path parameters' examples (so the examples phase reads real documents);
then `st run` with a fixed seed in deterministic mode and a 60-second cap,
checking: no 5xx, documented status codes and content types, each answer
against its schema, 405 with Allow for undeclared methods, and bad input
refused. Left out: revoking keys (it would revoke the run's own key) and
POST /webhooks (the cloud would deliver events to whatever URL was made up,
off this machine); tests/cloud/test_api_webhooks.py covers them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloud import responses
from cloud.routes import API, ROUTES, openapi

SEED = 20261128
MAX_TIME_S = 60
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "unsupported_method", "negative_data_rejection")
EXCLUDED = (API + "/keys/{key_id}/revoke", API + "/webhooks")


def test_every_route_documents_its_answer_and_its_problems():
    doc = openapi()
    missing = [f"{r.method} {r.path}" for r in ROUTES if (r.method, r.path) not in responses.RESPONSES]
    assert not missing, f"add their answers' schemas to cloud/responses.py RESPONSES: {missing}"
    for route in ROUTES:
        op = doc["paths"][API + route.path][route.method.lower()]
        ok = op["responses"][str(route.status)]
        if route.status != 204 and responses.RESPONSES[(route.method, route.path)] is not None:
            assert ok["content"], (route.method, route.path)
        for code in ("400", "401", "403", "404", "409", "422"):
            assert op["responses"][code]["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}
    # every $ref resolves inside the document
    text = json.dumps(doc)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in doc["components"]["schemas"], name


@pytest.fixture
def live(tmp_path):
    from tools.sim.demo import EXAMPLE
    from tools.infra.stack import Stack

    with Stack(tmp_path / "stack", log=lambda m: None) as stack:
        api = stack.api
        api.provision_device("dev-1", board="unix-sim", tags=["lab"])
        flow = api.create_flow(json.loads(EXAMPLE.read_text()))
        api.publish_flow(flow["id"])
        other = api.create_flow(json.loads(EXAMPLE.read_text()))
        api.publish_flow(other["id"])
        dep = api.create_deployment({"flow_id": flow["id"], "strategy": "all_at_once", "target_devices": ["dev-1"]})
        exe = api.post("/executions", {"flow_id": flow["id"], "target_devices": ["dev-1"], "timeout": "1s"})
        pipe = api.post("/pipelines", {"name": "p", "steps": [{"flow_id": flow["id"]}, {"flow_id": other["id"]}],
                                       "targets": {"target_devices": ["dev-1"]}})
        run = api.post(f"/pipelines/{pipe['id']}/runs")
        examples = {"device_id": "dev-1", "flow_id": flow["id"], "deployment_id": dep["id"], "execution_id": exe["id"],
                    "pipeline_id": pipe["id"], "run_id": run["id"], "version": 1, "v1": 1, "v2": 1}
        yield stack, examples


def test_schemathesis_finds_no_server_error_and_every_answer_fits_its_schema(live, tmp_path):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.fail("schemathesis is not installed: make setup (it is in the test extras)")
    stack, examples = live
    doc = openapi()
    for ops in doc["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] in examples:
                    param["example"] = examples[param["name"]]
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    cmd = [str(st), "run", str(schema), "--url", stack.api.url, "-H", f"x-api-key: {stack.api.api_key}",
           "--seed", str(SEED), "--generation-deterministic", "--max-time", str(MAX_TIME_S), "-w", "1",
           "--request-timeout", "10", "--checks", ",".join(CHECKS), "--no-color"]
    for path in EXCLUDED:
        cmd += ["--exclude-path", path]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=MAX_TIME_S + 120, cwd=tmp_path)
    out = got.stdout + got.stderr
    summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    print(summary)
    assert got.returncode == 0, out[-12000:]
    assert "generated" in summary and " passed" in summary
    shutil.rmtree(tmp_path / ".schemathesis", ignore_errors=True)

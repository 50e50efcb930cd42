"""The AsyncAPI 3.0 document of the device protocol (docs/asyncapi.json):
current with the message models, valid for the AsyncAPI parser from npm,
and true of real traffic: every message simulated devices and the cloud
exchange during a deploy, an execution and a failed deploy matches its
channel's payload schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import jsonschema_rs
import pytest

from shared_schema import asyncapi

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "asyncapi.json"
PARSER = REPO / "tools" / "asyncapi"


def test_the_committed_document_is_current():
    assert DOC.read_text() == asyncapi.text(), "regenerate: .venv/bin/python -m shared_schema.asyncapi > docs/asyncapi.json"


def test_the_asyncapi_parser_finds_it_valid():
    if not shutil.which("node") or not (PARSER / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.skip("the AsyncAPI parser is not installed: `make setup` runs npm ci in tools/asyncapi (needs npm)")
    got = subprocess.run(["node", str(PARSER / "validate.mjs"), str(DOC)], capture_output=True, text=True, timeout=120)
    report = json.loads(got.stdout)
    assert got.returncode == 0 and report["valid"], report["diagnostics"]
    assert report["version"] == "3.0.0"
    assert set(report["operations"]) == {"sendCmd", "receiveStatus", "receiveAck", "receiveHealth", "receiveRuns",
                                         "receiveOut"}
    assert not [d for d in report["diagnostics"] if d["severity"] == 0]


def test_each_channel_says_its_qos_and_retain():
    doc = asyncapi.document()
    binding = {name: op.get("bindings", {}).get("mqtt") for name, op in doc["operations"].items()}
    assert binding["receiveStatus"]["qos"] == 1 and binding["receiveStatus"]["retain"] is True
    assert binding["receiveHealth"]["qos"] == 0 and binding["sendCmd"]["qos"] == 1
    assert doc["channels"]["cmd"]["address"] == "ff/{device_id}/cmd"


def test_real_traffic_of_simulated_devices_matches_the_schemas(tmp_path):
    from tools.sim.demo import EXAMPLE, variant
    from tools.sim.simdevice import SimDevice
    from tools.infra.mqtt_watch import Watch
    from tools.infra.stack import Stack

    doc = asyncapi.document()
    validators = {name: jsonschema_rs.validator_for(asyncapi.payload_schema(doc, name))
                  for name in asyncapi.CHANNELS}
    with Stack(tmp_path / "stack", log=lambda m: None) as stack:
        sniffer = Watch(stack, "ff/#")
        api = stack.api
        creds = api.provision_device("aa-1", board="unix-sim")["credentials"]
        flow = json.loads(EXAMPLE.read_text())
        for var in flow["definition"]["variables"]:
            var["value"] = "0"  # every reading is over the threshold: the alert goes out on ff/aa-1/out/alert
        good = api.create_flow(flow)
        api.publish_flow(good["id"])
        bad = api.create_flow(variant(flow, typo=True))
        api.publish_flow(bad["id"])
        with SimDevice(tmp_path / "dev", "aa-1", creds["hmac_key"], stack.broker.host, stack.broker.port,
                       creds["mqtt"]["password"], sensors={"dht": {"4": {"profile": "sine"}}},
                       settings={"health_interval_s": 1}, mqtt_ca=creds["mqtt"]["ca"]):
            for flow_id in (good["id"], bad["id"]):
                dep = api.create_deployment({"flow_id": flow_id, "strategy": "all_at_once", "target_devices": ["aa-1"],
                                             "config": {"health": {"runs": 2, "seconds": 1}}})
                api.deployment_action(dep["id"], "start")
                deadline = time.monotonic() + 60
                while api.deployment(dep["id"])["status"] in ("pending", "running") and time.monotonic() < deadline:
                    time.sleep(0.3)
            exe = api.post("/executions", {"flow_id": good["id"], "target_devices": ["aa-1"]})
            while api.get(f"/executions/{exe['id']}")["status"] in ("pending", "running") and time.monotonic() < deadline:
                time.sleep(0.3)
            time.sleep(1.5)  # a health beat and the last runs batch
        time.sleep(1)  # the last will: offline
        sniffer.stop()

    by_kind: dict[str, int] = {}
    bad_messages = []
    for topic, payload, _retain in sniffer.seen:
        kind = topic.split("/")[2]
        by_kind[kind] = by_kind.get(kind, 0) + 1
        body = json.loads(payload)
        if kind in validators:
            errors = [e.message for e in validators[kind].iter_errors(body)]
            if errors:
                bad_messages.append((topic, errors, body))
    print("messages per channel:", by_kind)
    assert not validators["ack"].is_valid({"id": 7, "state": "staged"})  # the schemas do refuse a wrong message
    assert not validators["status"].is_valid({"state": "asleep"})
    assert not bad_messages, bad_messages[:5]
    assert {"status", "cmd", "ack", "health", "runs", "out"} <= set(by_kind), by_kind
    states = {json.loads(p).get("state") for t, p, _ in sniffer.seen if t.endswith("/ack")}
    assert {"staged", "applied", "healthy", "rolled_back", "done"} <= states
    assert {json.loads(p)["state"] for t, p, _ in sniffer.seen if t.endswith("/status")} == {"online", "offline"}

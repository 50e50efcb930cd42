"""The CLI's view of the whole API against a real cloud, broker and simulated
device: devices (filters, pages, panel, runs, logs), flow show/versions/diff
of cloud versions, deploy with acks, trial countdown and the failing node's
error, exec with overrides, pipelines, webhooks, keys, and the hints a user
needs (401, pasted /api/v1 URLs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tools import cli

from tools.cli import cmd_devices
from tools.sim.demo import EXAMPLE, variant

HEALTH = '{"runs": 2, "seconds": 2}'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A cloud with a published example flow (v1), its typo'd v2, and one online simulated device `cli-a`."""
    from tools.sim.simdevice import SimDevice
    from tools.infra.stack import Stack

    wd = tmp_path_factory.mktemp("cli")
    saved = {k: os.environ.get(k) for k in ("FLEETFLOW_URL", "FLEETFLOW_API_KEY")}
    with Stack(wd / "stack", log=lambda m: None) as stack:
        os.environ["FLEETFLOW_URL"], os.environ["FLEETFLOW_API_KEY"] = stack.api.url, stack.api.api_key
        api = stack.api
        creds = api.provision_device("cli-a", board="unix-sim", tags=["lab"], environment="dev")["credentials"]
        api.provision_device("cli-b", board="esp32-devkitc", environment="prod")
        example = json.loads(EXAMPLE.read_text())
        flow = api.create_flow(example)
        api.publish_flow(flow["id"])
        api.restore_version(flow["id"], 1, publish=False)
        api.update_flow(flow["id"], variant(example, typo=True))
        api.publish_flow(flow["id"])
        other = api.create_flow({**example, "name": "Second"})
        api.publish_flow(other["id"])
        dev = SimDevice(wd / "dev", "cli-a", creds["hmac_key"], stack.broker.host, stack.broker.port,
                        creds["mqtt"]["password"], sensors={"dht": {"4": {"profile": "sine"}}},
                        mqtt_ca=creds["mqtt"]["ca"])
        with dev:
            deadline = time.monotonic() + 30
            while not api.get_device("cli-a")["online"] and time.monotonic() < deadline:
                time.sleep(0.2)
            yield {"stack": stack, "api": api, "flow": flow["id"], "other": other["id"]}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_devices_list_filters_pages_and_panel(fleet, capsys, monkeypatch):
    rc, out, _ = _run(capsys, "devices", "list", "--tag", "lab", "--json")
    assert rc == 0 and [d["id"] for d in json.loads(out)] == ["cli-a"]
    rc, out, _ = _run(capsys, "devices", "list", "--environment", "prod", "--json")
    assert [d["id"] for d in json.loads(out)] == ["cli-b"]
    rc, out, _ = _run(capsys, "devices", "list", "--offline", "--json")
    assert [d["id"] for d in json.loads(out)] == ["cli-b"]
    monkeypatch.setattr(cmd_devices, "PAGE", 1)  # one device a page: the list follows `next`
    rc, out, _ = _run(capsys, "devices", "list", "--json")
    assert [d["id"] for d in json.loads(out)] == ["cli-a", "cli-b"]
    rc, out, _ = _run(capsys, "devices", "list", "--limit", "1", "--json")
    assert [d["id"] for d in json.loads(out)] == ["cli-a"]
    rc, out, _ = _run(capsys, "devices", "list")
    assert "False" not in out and "True" not in out and "None" not in out
    row = next(line for line in out.splitlines() if line.startswith("cli-a"))
    assert "online" in row and " no " in f" {row} " and "lab" in row
    assert "2 devices, 1 online" in out
    rc, out, _ = _run(capsys, "devices", "show", "cli-a")
    assert rc == 0 and "device cli-a" in out and not out.lstrip().startswith("{")
    for label, value in (("board", "unix-sim"), ("state", "online"), ("environment", "dev"), ("firmware", "0.1.0")):
        assert any(label in line and value in line for line in out.splitlines()), (label, out)
    rc, _, err = _run(capsys, "devices", "show", "nope")
    assert rc == 1 and "no device 'nope'" in err


def test_flow_show_versions_and_diff_of_cloud_versions(fleet, capsys):
    flow = fleet["flow"]
    rc, out, _ = _run(capsys, "flow", "versions", flow)
    assert rc == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["1", "2"]
    rc, out, _ = _run(capsys, "flow", "show", flow, "--version", "1")
    assert rc == 0 and "Temperature Alert" in out and "nodes" in out and "threshold" in out
    assert any("n2" in line and "change" in line and '"temperature"' in line for line in out.splitlines())
    rc, out, _ = _run(capsys, "flow", "diff", flow, "1", "2")
    assert rc == 1 and out.strip() == '~ node n2 config.property: "temperature" -> "temperatur"'
    rc, out, _ = _run(capsys, "flow", "diff", flow, "1", "1")
    assert rc == 0 and "no differences" in out
    rc, _, err = _run(capsys, "flow", "diff", flow, "1", "7")
    assert rc == 1 and "no version 7" in err


def test_deploy_shows_acks_the_trial_and_the_failing_node(fleet, capsys):
    flow = fleet["flow"]
    rc, out, err = _run(capsys, "deploy", "create", flow, "--version", "1", "--devices", "cli-a",
                        "--strategy", "all_at_once", "--health", HEALTH, "--interval", "0.2")
    assert rc == 0, err + out
    assert "health rule: kept after 2 runs with at most 25% failing and 2 s on trial" in out
    assert "cli-a: deploying (received > staged > applied): on trial" in out
    assert "s left" in out
    assert "cli-a: success (received > staged > applied > healthy)" in out

    rc, out, err = _run(capsys, "deploy", "create", flow, "--version", "2", "--devices", "cli-a",
                        "--strategy", "all_at_once", "--health", HEALTH, "--interval", "0.2")
    assert rc == 1
    assert "cli-a: failed: rolled back on the device: error_rate" in out
    assert "n2: " in out and "temperatur" in out  # the failing node and its error
    rc, out, _ = _run(capsys, "deploy", "list")
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["ID", "FLOW", "VER", "STRATEGY", "STATUS", "DONE"]
    assert any(" 2 " in r and "failed" in r and "0/1" in r for r in rows), out
    dep_id = next(r.split()[0] for r in rows if "failed" in r)
    rc, out, _ = _run(capsys, "deploy", "show", dep_id)
    assert "0.0s" not in out and "health rule" in out
    assert any("cli-a" in line and "rolled_back" in line for line in out.splitlines()), out


def test_exec_run_with_overrides_show_logs_retry(fleet, capsys):
    flow = fleet["flow"]
    rc, out, err = _run(capsys, "exec", "run", flow, "--version", "1", "--devices", "cli-a",
                        "--var", "threshold=1", "--param", "n2.value=0", "--interval", "0.2", "--json")
    assert rc == 0, err
    exe = json.loads(out)
    assert exe["status"] == "completed" and exe["overrides"] == {"vars": {"threshold": 1}, "params": {"n2": {"value": 0}}}
    assert f"started execution {exe['id']}" in err and "cli-a: completed" in err
    rc, out, _ = _run(capsys, "exec", "show", exe["id"])
    assert "n1" in out and "dht" in out and "n4" in out and "threshold" in out  # threshold 1: the alert node ran
    rc, out, _ = _run(capsys, "exec", "list")
    assert exe["id"] in out and "completed" in out
    rc, _, err = _run(capsys, "exec", "run", flow, "--devices", "cli-a", "--var", "threshold")
    assert rc == 2 and "NAME=VALUE" in err
    rc, _, err = _run(capsys, "exec", "run", flow, "--version", "1", "--devices", "cli-a", "--var", "nope=1")
    assert rc == 1 and "/overrides/vars/nope" in err

    rc, out, err = _run(capsys, "exec", "run", flow, "--version", "2", "--devices", "cli-a", "--interval", "0.2")
    assert rc == 1 and "cli-a: failed" in out and "n2" in out
    failed_id = out.split()[2]
    rc, out, _ = _run(capsys, "exec", "logs", failed_id)
    assert any("cli-a" in line and "error" in line and "n2" in line for line in out.splitlines()), out
    rc, out, _ = _run(capsys, "exec", "retry", failed_id, "--interval", "0.2")
    assert rc == 1 and "started execution" in out


def test_pipeline_create_run_show(fleet, capsys):
    rc, out, err = _run(capsys, "pipeline", "create", "two", fleet["other"], fleet["other"], "--devices", "cli-a")
    assert rc == 0, err
    pl = out.split()[2]
    rc, out, err = _run(capsys, "pipeline", "run", pl, "--interval", "0.2")
    assert rc == 0, out + err
    assert "step 1 " in out and "step 2 " in out and "completed" in out
    rc, out, _ = _run(capsys, "pipeline", "list")
    assert any(line.startswith(pl) and "two" in line for line in out.splitlines())
    rc, out, _ = _run(capsys, "pipeline", "show", pl)
    assert "stop on failure" in out and "completed" in out
    rc, _, err = _run(capsys, "pipeline", "create", "one", fleet["other"])
    assert rc == 2 and "two or more" in err
    rc, out, err = _run(capsys, "pipeline", "update", pl, "--name", "twice", "--continue-on-failure", "--manual", "2")
    assert rc == 0 and "updated pipeline" in out and "(twice)" in out, out + err
    assert out.count("(continue on failure)") == 2 and out.count("(manual)") == 1, out
    rc, out, _ = _run(capsys, "pipeline", "show", pl)
    assert "continue on failure" in out and "stop on failure" not in out and "cli-a" in out
    rc, _, err = _run(capsys, "pipeline", "update", pl, "--flows", fleet["other"], "nope")
    assert rc == 1 and "/steps/1/flow_id" in err
    rc, _, err = _run(capsys, "pipeline", "update", pl)
    assert rc == 2 and "nothing to change" in err


def test_a_manual_step_waits_for_pipeline_advance(fleet, capsys):
    rc, out, err = _run(capsys, "pipeline", "create", "checked", fleet["other"], fleet["other"], "--devices", "cli-a",
                        "--manual", "1")
    assert rc == 0, err
    pl = out.split()[2]
    rc, out, err = _run(capsys, "pipeline", "run", pl, "--no-wait")
    assert rc == 0, err
    run_id = out.split()[3].rstrip(":")
    deadline = time.monotonic() + 30
    while True:  # the device runs step 1's flow; then the step waits on a person
        rc, out, _ = _run(capsys, "pipeline", "show", pl, run_id)
        if "waits for pipeline advance" in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "1/2" in out and "running (waits for pipeline advance)" in out, out
    rc, out, err = _run(capsys, "pipeline", "advance", pl, run_id, "--done")
    assert rc == 0 and "step 1 " in out and "completed" in out and "step 2 " in out, out + err
    with pytest.raises(SystemExit):  # one of --done or --failed is needed
        _run(capsys, "pipeline", "advance", pl, run_id)
    assert "--done" in capsys.readouterr().err
    rc, _, err = _run(capsys, "pipeline", "create", "x", fleet["other"], fleet["other"], "--manual", "3")
    assert rc == 2 and "there are steps 1 to 2" in err


def test_webhooks_keys_and_what_a_user_is_told(fleet, capsys, monkeypatch):
    rc, out, _ = _run(capsys, "webhooks", "create", "http://127.0.0.1:9/hook", "--event", "deployment.")
    assert rc == 0 and "signing secret whsec_" in out
    hook = out.split()[1].rstrip(":")
    rc, out, _ = _run(capsys, "webhooks", "list")
    assert "http://127.0.0.1:9/hook" in out and "deployment." in out and "yes" in out
    rc, out, _ = _run(capsys, "webhooks", "deliveries", hook)
    assert rc == 0 and "no deliveries" in out
    rc, out, _ = _run(capsys, "webhooks", "delete", hook)
    assert rc == 0
    rc, out, _ = _run(capsys, "keys", "list", "--cloud", fleet["api"].url)
    assert rc == 0 and "admin" in out and " no " in out
    # in a process of its own: opening a database binds the cloud's models to it (this one serves the stack)
    got = subprocess.run([sys.executable, "-m", "tools.cli", "keys", "list", "--db",
                          f"sqlite:///{fleet['stack'].workdir / 'empty.db'}"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and "no API keys in" in got.stdout

    monkeypatch.setenv("FLEETFLOW_API_KEY", "ffk_wrong")
    rc, _, err = _run(capsys, "devices", "list")
    assert rc == 1 and "401" in err and "FLEETFLOW_API_KEY" in err
    monkeypatch.setenv("FLEETFLOW_API_KEY", fleet["api"].api_key)
    # a URL as the API prints it (…/api/v1) works when pasted into --cloud
    for printed in (fleet["api"].api_url(), fleet["api"].api_url("/deployments/dep_123/events")):
        rc, out, _ = _run(capsys, "devices", "list", "--json", "--cloud", printed)
        assert rc == 0 and len(json.loads(out)) == 2, printed


def test_the_failing_nodes_error_travels_to_every_reason(fleet, capsys):
    """A device's rollback names the node and its error; the deployment's and
    the target's reason, a pipeline step's error and the webhook payloads carry it."""
    api, flow = fleet["api"], fleet["flow"]
    hook = api.post("/webhooks", {"url": "http://127.0.0.1:9/cause", "events": ["deployment.", "execution.failed",
                                                                             "pipeline_run.failed"]})
    cause = "n2: KeyError: temperatur"
    dep = api.create_deployment({"flow_id": flow, "version": 2, "strategy": "all_at_once",
                                 "target_devices": ["cli-a"], "config": {"health": json.loads(HEALTH)}})
    api.deployment_action(dep["id"], "start")
    deadline = time.monotonic() + 60
    while api.deployment(dep["id"])["status"] not in ("failed", "rolled_back") and time.monotonic() < deadline:
        time.sleep(0.3)
    dep = api.deployment(dep["id"])
    assert dep["targets"][0]["reason"].startswith("rolled back on the device: error_rate 1.00 > 0.25; " + cause)
    assert cause in dep["reason"]

    pl = api.post("/pipelines", {"name": "fails", "steps": [{"flow_id": flow}, {"flow_id": fleet["other"]}],
                                 "targets": {"target_devices": ["cli-a"]}})
    run = api.post(f"/pipelines/{pl['id']}/runs")
    while run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
        run = api.get(f"/pipelines/{pl['id']}/runs/{run['id']}")
    step = run["steps_snapshot"][0]
    assert run["status"] == "failed" and step["error"] == f"execution {step['execution_id']} failed: cli-a: {cause}"

    while time.monotonic() < deadline:
        payloads = {d["event"]: d["payload"] for d in api.get(f"/webhooks/{hook['id']}/deliveries")["deliveries"]}
        if {"deployment.failed", "execution.failed", "pipeline_run.failed"} <= set(payloads):
            break
        time.sleep(0.3)
    assert cause in payloads["deployment.failed"]["data"]["reason"]
    assert payloads["execution.failed"]["data"]["reason"] == f"cli-a: {cause}"
    assert payloads["pipeline_run.failed"]["data"]["error"] == step["error"]
    api.request("DELETE", f"/webhooks/{hook['id']}")


def test_deploy_dry_run_shows_the_preflight_and_creates_nothing(fleet, capsys):
    api = fleet["api"]
    before = len(api.get("/deployments")["deployments"])
    rc, out, _ = _run(capsys, "deploy", "create", fleet["other"], "--devices", "cli-a,cli-b", "--dry-run")
    assert rc == 0  # cli-b never connected: waited for by default
    assert "2 target(s): 1 never seen, 1 ready" in out and "cli-b" in out and "never connected" in out
    assert "would be created; offline targets: wait" in out
    rc, out, _ = _run(capsys, "deploy", "create", fleet["other"], "--devices", "cli-a,cli-b", "--dry-run",
                      "--offline", "fail")
    assert rc == 1 and "would be refused (409)" in out and "cli-b" in out
    rc, out, _ = _run(capsys, "deploy", "create", fleet["other"], "--devices", "cli-a", "--dry-run", "--json")
    dry = json.loads(out)
    assert rc == 0 and dry["preflight"]["counts"]["ready"] == 1 and dry["refused"] is None
    assert len(api.get("/deployments")["deployments"]) == before

"""The CLI against a real cloud and a real simulated device: flow create/publish/list,
devices provision/list, deploy create with live progress, deploy show/list."""

from __future__ import annotations

import io
import json
import time

import pytest

from tools import cli
from tools.sim.demo import EXAMPLE

HEALTH = '{"runs": 2, "seconds": 2}'


@pytest.fixture
def stack(tmp_path, monkeypatch):
    from tools.infra.stack import Stack

    with Stack(tmp_path / "stack", log=lambda m: None) as s:
        monkeypatch.setenv("FLEETFLOW_URL", s.api.url)
        monkeypatch.setenv("FLEETFLOW_API_KEY", s.api.api_key)
        yield s


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_flow_create_publish_list(stack, capsys, tmp_path):
    rc, out, _ = _run(capsys, "flow", "create", str(EXAMPLE), "--json")
    assert rc == 0
    flow_id = json.loads(out)["id"]
    rc, out, _ = _run(capsys, "flow", "publish", flow_id)
    assert (rc, out.strip()) == (0, f"published flow {flow_id} version 1")
    rc, out, _ = _run(capsys, "flow", "list", "--json")
    assert [(f["id"], f["status"], f["version"]) for f in json.loads(out)] == [(flow_id, "published", 1)]
    rc, out, _ = _run(capsys, "flow", "list")
    assert flow_id in out and "Temperature Alert" in out
    rc, out, _ = _run(capsys, "flow", "restore", flow_id, "1")
    assert (rc, out.strip()) == (0, f"restored flow {flow_id} version 1 as version 2")
    rc, out, _ = _run(capsys, "flow", "restore", flow_id, "2", "--draft")
    assert rc == 0 and "draft" in out
    rc, out, _ = _run(capsys, "flow", "list", "--json")
    assert [(f["status"], f["version"], f["restored_from"]) for f in json.loads(out)] == [("draft", 2, 2)]
    rc, _, err = _run(capsys, "flow", "restore", flow_id, "9")
    assert rc == 1 and "no version 9" in err

    bad = json.loads(EXAMPLE.read_text())
    bad["definition"]["connections"][2]["target"] = "n9"  # no such node
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    rc, out, _ = _run(capsys, "flow", "create", str(path), "--json")
    bad_id = json.loads(out)["id"]
    rc, _, err = _run(capsys, "flow", "publish", bad_id)
    assert rc == 1
    assert "/definition/connections/2/target" in err


def test_devices_provision_then_deploy_with_live_progress(stack, capsys, tmp_path):
    from tools.sim.simdevice import SimDevice

    rc, out, _ = _run(capsys, "devices", "provision", "--id", "cli-1", "--tag", "lab", "--json")
    assert rc == 0
    creds = json.loads(out)["credentials"]
    rc, out, _ = _run(capsys, "devices", "list")
    assert "cli-1" in out and "never_seen" in out and "1 devices, 0 online" in out

    rc, out, _ = _run(capsys, "flow", "create", str(EXAMPLE), "--json")
    flow_id = json.loads(out)["id"]
    _run(capsys, "flow", "publish", flow_id)
    dev = SimDevice(tmp_path / "dev", "cli-1", creds["hmac_key"], stack.broker.host, stack.broker.port,
                    creds["mqtt"]["password"], sensors={"dht": {"4": {"profile": "sine"}}}, mqtt_ca=creds["mqtt"]["ca"])
    with dev:
        deadline = time.monotonic() + 30
        while not stack.api.get_device("cli-1")["online"] and time.monotonic() < deadline:
            time.sleep(0.2)
        rc, out, err = _run(capsys, "deploy", "create", flow_id, "--tag", "lab", "--strategy", "all_at_once",
                            "--health", HEALTH, "--interval", "0.2", "--json")
        assert rc == 0, err
        dep = json.loads(out)
        assert dep["status"] == "completed" and dep["completed_targets"] == 1
        assert f"created deployment {dep['id']} (all_at_once)" in err
        assert "phase: batch" in err and "deploying 1" in err and "[####################] 1/1" in err

        # the live display follows the cloud's event stream: one read of the document, at the end
        from tools.cli import client as client_mod
        from tools.cli import deploy_progress

        class Counting(client_mod.Client):
            reads = 0

            def deployment(self, dep_id):
                Counting.reads += 1
                return super().deployment(dep_id)

        api = Counting(stack.api.url, stack.api.api_key)
        dep2 = api.create_deployment({"flow_id": flow_id, "strategy": "rolling", "target_devices": ["cli-1"],
                                      "config": {"health": json.loads(HEALTH)}})
        api.deployment_action(dep2["id"], "start")
        out = io.StringIO()
        final = deploy_progress.watch(api, dep2["id"], out=out, live=False, timeout_s=60)
        assert final["status"] == "completed" and Counting.reads == 1
        assert "deploying 1" in out.getvalue() and "completed" in out.getvalue()
        rc, out, _ = _run(capsys, "devices", "list", "--json")
        assert [(d["id"], d["state"], d["ver"]) for d in json.loads(out)] == [("cli-1", "online", 1)]
    rc, out, _ = _run(capsys, "deploy", "list")
    assert dep["id"] in out and "completed" in out and "1/1" in out
    rc, out, _ = _run(capsys, "deploy", "show", dep["id"])
    assert "cli-1" in out and "success" in out


def test_cli_says_when_the_cloud_is_unreachable(capsys, monkeypatch):
    monkeypatch.setenv("FLEETFLOW_URL", "http://127.0.0.1:9")
    rc, _, err = _run(capsys, "devices", "list")
    assert rc == 1 and "cannot reach the cloud at http://127.0.0.1:9" in err


def test_deploy_of_a_failing_flow_exits_1_and_says_why(stack, capsys, tmp_path):
    from tools.sim.demo import variant
    from tools.sim.simdevice import SimDevice

    creds = stack.api.provision_device("cli-2", board="unix-sim")["credentials"]
    broken = variant(json.loads(EXAMPLE.read_text()), typo=True)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    rc, out, _ = _run(capsys, "flow", "create", str(path), "--json")
    flow_id = json.loads(out)["id"]
    _run(capsys, "flow", "publish", flow_id)
    with SimDevice(tmp_path / "dev", "cli-2", creds["hmac_key"], stack.broker.host, stack.broker.port,
                   creds["mqtt"]["password"], sensors={"dht": {"4": {"profile": "steady"}}},
                   mqtt_ca=creds["mqtt"]["ca"]):
        deadline = time.monotonic() + 30
        while not stack.api.get_device("cli-2")["online"] and time.monotonic() < deadline:
            time.sleep(0.2)
        rc, out, _ = _run(capsys, "deploy", "create", flow_id, "--devices", "cli-2", "--strategy", "all_at_once",
                          "--health", HEALTH)
    assert rc == 1
    assert "cli-2: failed: rolled back on the device: error_rate" in out

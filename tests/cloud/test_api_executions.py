"""Executions: a flow version run once on devices, with overrides."""

from __future__ import annotations

import asyncio
import json

from shared_schema.envelope import command_args, verify, verify_command
from shared_schema.messages import Ack

from cloud.app import init_app
from cloud.appkeys import DB, DRIVER
from cloud.models import Command
from cloud.store.devices import record_status
from cloud.store import keys as key_store
from cloud.store.runs import ingest

STEP_FLOW = {"name": "maintenance-routine", "steps": [
    {"node": "clear-cache", "params": {}},
    {"node": "toggle-feature", "params": {"name": "debug-overlay", "enabled": False}},
    {"node": "set-log-level", "params": {"level": "warning"}}]}


async def _setup(api, count=2):
    """A flow and `count` devices, connected (`"all": true` means the connected ones)."""
    flow = await api.published_flow(STEP_FLOW)
    devices = [await api.post("/devices", {"id": f"x{i}", "board": "unix-sim", "tags": ["ops"]}, expect=201)
               for i in range(count)]
    for d in devices:
        api.app[DB].call(record_status, d["id"], {"state": "online"}, 1.0)
    return flow, devices


async def test_all_means_the_connected_devices_unless_offline_ones_are_asked_for(api):
    flow, _ = await _setup(api)
    await api.post("/devices", {"id": "x9", "board": "unix-sim"}, expect=201)  # never connected
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    assert [t["device_id"] for t in exe["targets"]] == ["x0", "x1"]
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True, "include_offline": True}, expect=201)
    assert [t["device_id"] for t in exe["targets"]] == ["x0", "x1", "x9"]
    api.app[DB].call(record_status, "x0", {"state": "offline"}, 2.0)
    api.app[DB].call(record_status, "x1", {"state": "offline"}, 2.0)
    problem = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=422)
    assert "no device is connected" in problem["errors"][0]["message"]


def done(api, device, exe_id, status="completed", run=7, reason=None, stored=True):
    """The device's acks of its run, then (`stored`) the run's record stored
    as the bridge stores it."""
    api.app[DRIVER].on_ack(device, Ack(id=f"{exe_id}.{device}.exec", op="exec", state="received"))
    api.app[DRIVER].on_ack(device, Ack(id=f"{exe_id}.{device}.exec", op="exec", state="done", status=status,
                                       run=run, reason=reason))
    if stored:
        store_record(api, device, exe_id, run, status)


def store_record(api, device, exe_id, run=7, status="completed", **fields):
    record = {"run": run, "exec": exe_id, "trigger": "exec", "status": status, "us": 100, "nodes": [], **fields}
    api.app[DB].call(ingest, [(device, {"dev": device, "runs": [record], "dropped": 0}, 1.0)])


async def _status(api, exe_id, wanted):
    async def reached():
        got = await api.get(f"/executions/{exe_id}")
        return got if got["status"] == wanted else None
    return await api.until(reached)


async def test_an_execution_sends_a_signed_inline_program_with_overrides(api):
    flow, devices = await _setup(api)
    overrides = {"vars": {}, "params": {"s3": {"level": "error"}}}
    exe = await api.post("/executions", {"flow_id": flow["id"], "target_tags": ["ops"], "overrides": overrides},
                         expect=201)
    assert exe["status"] == "pending" and exe["version"] == 1 and len(exe["targets"]) == 2
    cmd = api.app[DB].call(Command.get_by_id, f"{exe['id']}.x0.exec").payload[0]
    args = command_args(cmd)
    assert (cmd["op"], args["exec"], args["overrides"]) == ("exec", exe["id"], overrides)
    key = bytes.fromhex(devices[0]["credentials"]["hmac_key"])
    # the command and its program are signed for x0 with one fresh number
    assert verify_command(cmd, key, "x0") and verify(cmd, key, "x0") and cmd["seq"] == cmd["cseq"] >= 1
    assert not verify_command(dict(cmd, args=cmd["args"].replace("error", "debug")), key, "x0")
    assert not verify_command(cmd, bytes.fromhex(devices[1]["credentials"]["hmac_key"]), "x1")
    again = await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["x0"]}, expect=201)
    cmd2 = api.app[DB].call(Command.get_by_id, f"{again['id']}.x0.exec").payload[0]
    assert cmd2["cseq"] > cmd["cseq"]  # never the same number twice: the device takes each once


async def test_overrides_that_do_not_fit_the_flow_are_refused_before_any_device_gets_them(api, seed_flow):
    flow = await api.published_flow()  # seed 001: n1 dht, n2 switch on $threshold, n3 mqtt_out
    await api.post("/devices", {"id": "g0", "board": "unix-sim"}, expect=201)
    body = {"flow_id": flow["id"], "target_devices": ["g0"]}
    problem = await api.post("/executions", dict(body, overrides={
        "vars": {"threshold": "hot", "treshold": 3}, "params": {"n9": {"x": 1}, "n1": {"pin": 5}}}), expect=422)
    assert [e["pointer"] for e in problem["errors"]] == [
        "/overrides/vars/treshold", "/overrides/params/n9", "/overrides/params/n1/pin"]
    problem = await api.post("/executions", dict(body, overrides={
        "vars": {"threshold": "hot"}, "params": {"n3": {"topic": "alerts/#"}}}), expect=422)
    assert [(e["pointer"], e["boards"]) for e in problem["errors"]] == [
        ("/overrides/vars/threshold", ["unix-sim"]), ("/overrides/params/n3/topic", ["unix-sim"])]
    assert "not a number" in problem["errors"][0]["message"] and "wildcard" in problem["errors"][1]["message"]
    assert (await api.get("/executions"))["executions"] == []
    exe = await api.post("/executions", dict(body, overrides={"vars": {"threshold": "25"}}), expect=201)
    cmd = api.app[DB].call(Command.get_by_id, f"{exe['id']}.g0.exec").payload[0]
    assert command_args(cmd)["overrides"] == {"vars": {"threshold": 25}, "params": {}}  # as the device takes it


async def test_results_and_per_node_logs_by_severity(api):
    flow, _ = await _setup(api)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    for dev in ("x0", "x1"):
        done(api, dev, exe["id"], stored=False)
    record = {"run": 7, "flow": flow["id"], "ver": 1, "exec": exe["id"], "trigger": "exec", "status": "completed",
              "t_ms": 5, "us": 300, "logs": [["info", "s3", "level now warning"], ["warning", "s2", "flag off"]],
              "nodes": [{"id": "s1", "type": "clear_cache", "us": 100, "out": "{}", "port": 0, "err": None}]}
    api.app[DB].call(ingest, [("x0", {"dev": "x0", "runs": [record], "dropped": 0}, 1.0)])
    store_record(api, "x1", exe["id"])
    final = await _status(api, exe["id"], "completed")
    assert [t["status"] for t in final["targets"]] == ["completed", "completed"]
    assert final["targets"][0]["record"]["nodes"][0]["type"] == "clear_cache"
    warned = await api.get(f"/executions/{exe['id']}?level=warning")
    assert warned["targets"][0]["record"]["logs"] == [["warning", "s2", "flag off"]]
    await api.get(f"/executions/{exe['id']}?level=loud", expect=422)


async def test_a_run_through_a_delay_is_one_record_with_the_nodes_after_the_delay(api):
    # the part after a delay comes as a later run of the same execution
    flow, _ = await _setup(api, 1)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    done(api, "x0", exe["id"], run=2, stored=False)

    def record(run, trigger, nodes, status="completed"):
        return {"run": run, "flow": flow["id"], "ver": 1, "exec": exe["id"], "trigger": trigger, "status": status,
                "t_ms": 5, "us": 100 * len(nodes), "logs": [["info", nodes[-1], f"run {run}"]],
                "nodes": [{"id": n, "type": "clear_cache", "us": 100, "out": "{}", "port": 0, "err": None}
                          for n in nodes]}
    batch = {"dev": "x0", "runs": [record(2, "delay:s1", ["s2", "s3"]), record(1, "exec", ["s1"])], "dropped": 0}
    api.app[DB].call(ingest, [("x0", batch, 1.0)])
    got = (await _status(api, exe["id"], "completed"))["targets"][0]["record"]
    assert [n["id"] for n in got["nodes"]] == ["s1", "s2", "s3"]
    assert (got["run"], got["trigger"], got["status"], got["us"]) == (2, "exec", "completed", 300)
    assert got["logs"] == [["info", "s1", "run 1"], ["info", "s3", "run 2"]]


async def test_a_failed_device_fails_the_execution_and_retry_reruns_only_it(api):
    flow, _ = await _setup(api)
    exe = await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["x0", "x1"]}, expect=201)
    done(api, "x0", exe["id"])
    done(api, "x1", exe["id"], status="failed", reason="s2: ValueError")
    final = await _status(api, exe["id"], "failed")
    assert final["targets"][1]["reason"] == "s2: ValueError"
    again = await api.post(f"/executions/{exe['id']}/retry", expect=201)
    assert again["retry_of"] == exe["id"] and [t["device_id"] for t in again["targets"]] == ["x1"]
    replay = await api.post(f"/executions/{exe['id']}/replay", expect=201)
    assert [t["device_id"] for t in replay["targets"]] == ["x0", "x1"]


async def test_an_execution_completes_only_once_its_run_records_are_stored(api):
    # seed 000: the log is there when the status says the run ended (issue 14, item 4)
    flow, _ = await _setup(api)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    store_record(api, "x1", exe["id"], run=3, logs=[["info", "s1", "early"]])  # a record may come before its `done`
    done(api, "x0", exe["id"], run=5, stored=False)
    done(api, "x1", exe["id"], run=3, stored=False)

    async def x1_settled():
        got = await api.get(f"/executions/{exe['id']}")
        return got if got["targets"][1]["status"] == "completed" else None
    got = await api.until(x1_settled)
    assert got["status"] == "running" and got["targets"][0]["status"] == "running"  # x0's record is not in yet
    assert got["targets"][0]["record"] is None and got["targets"][1]["record"]["logs"] == [["info", "s1", "early"]]
    store_record(api, "x0", exe["id"], run=4)  # an earlier run's record is not the one `done` named
    store_record(api, "x0", exe["id"], run=5, logs=[["info", "s2", "late"]])
    final = await _status(api, exe["id"], "completed")
    assert [t["status"] for t in final["targets"]] == ["completed", "completed"]
    assert final["targets"][0]["record"]["logs"][-1] == ["info", "s2", "late"]


async def test_a_run_record_that_never_comes_ends_the_target_as_done_said_at_the_timeout(api):
    flow, _ = await _setup(api, 1)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True, "timeout": "300ms"}, expect=201)
    done(api, "x0", exe["id"], status="failed", reason="s2: ValueError", stored=False)
    final = await _status(api, exe["id"], "failed")
    assert final["targets"][0]["status"] == "failed"
    assert final["targets"][0]["reason"] == "s2: ValueError; its run record did not arrive within 0.3s"


async def test_nothing_stays_running_past_the_timeout(api):
    flow, _ = await _setup(api, 1)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True, "timeout": "200ms"}, expect=201)
    final = await _status(api, exe["id"], "timed_out")
    assert final["targets"][0]["status"] == "timed_out"


async def test_cancel_and_bad_requests(api):
    flow, _ = await _setup(api, 1)
    exe = await api.post("/executions", {"flow_id": flow["id"], "all": True}, expect=201)
    assert (await api.post(f"/executions/{exe['id']}/cancel"))["status"] == "cancelled"
    await api.post(f"/executions/{exe['id']}/cancel", expect=409)
    await api.post("/executions", {"flow_id": flow["id"], "all": True, "timeout": "soon"}, expect=422)
    await api.post("/executions", {"flow_id": "nope", "all": True}, expect=422)
    await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["ghost"]}, expect=422)
    await api.get("/executions/exe_nope", expect=404)
    assert len((await api.get(f"/executions?flow_id={flow['id']}"))["executions"]) == 1


async def test_an_exec_command_too_big_to_send_is_refused_before_anything_is_recorded(api):
    # The broker cuts off a client that publishes a packet over its
    # max_packet_size, the cloud included (and the outbox would send it again
    # on every reconnect): an execution whose command would be that big (a
    # long inline program with long overrides) is a 422.
    logs = [{"node": "log", "params": {"level": "info", "message": "m"}} for _ in range(52)]
    flow = await api.published_flow({"name": "many-logs", "steps": [{"node": "inject", "params": {"payload": 1}}, *logs]})
    await api.post("/devices", {"id": "big0", "board": "unix-sim"}, expect=201)
    # quotes: escaped once in the program (what the board's size budget counts),
    # twice in the command (its args are JSON text inside the command's JSON)
    long = {f"s{i}": {"message": '"' * 39} for i in range(2, 54)}
    problem = await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["big0"],
                                             "overrides": {"params": long}}, expect=422)
    [error] = problem["errors"]
    assert error["pointer"] == "/overrides" and "over the 12032 a command may have" in error["message"]
    assert (await api.get("/executions"))["executions"] == []
    # shorter overrides fit, and the command that goes out is within the bound
    short = {f"s{i}": {"message": "x" * 20} for i in range(2, 54)}
    exe = await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["big0"],
                                         "overrides": {"params": short}}, expect=201)
    cmd = api.app[DB].call(Command.get_by_id, f"{exe['id']}.big0.exec").payload[0]
    assert 6000 < len(json.dumps(cmd, separators=(",", ":"))) <= 12032


async def test_one_clock_stamps_and_times_out(aiohttp_client, cloud_config):
    # Config.clock is the only time: what the stores stamp and what timeouts
    # are judged on (a store stamping the wall clock would time this
    # execution out at once, its created_at being years after "now").
    clock = [1_000_000_000.0]  # 2001-09-09T01:46:40Z
    cloud_config.clock = lambda: clock[0]
    app = init_app(cloud_config)
    client = await aiohttp_client(app)
    headers = {"x-api-key": app[DB].call(key_store.create_key, "admin")["key"]}

    async def call(method, path, body=None):
        resp = await client.request(method, "/api/v1" + path, json=body, headers=headers)
        assert resp.status < 300, await resp.text()
        return await resp.json()
    flow = await call("POST", "/flows", STEP_FLOW)
    assert flow["created_at"] == "2001-09-09T01:46:40.000Z"
    await call("POST", f"/flows/{flow['id']}/publish", {})
    await call("POST", "/devices", {"id": "c0", "board": "unix-sim"})
    exe = await call("POST", "/executions", {"flow_id": flow["id"], "target_devices": ["c0"], "timeout": "10s"})
    assert exe["created_at"] == "2001-09-09T01:46:40.000Z"
    await asyncio.sleep(0.3)  # ticks go by; by the app's clock no time has
    assert (await call("GET", f"/executions/{exe['id']}"))["status"] == "pending"
    clock[0] += 10
    for _ in range(100):
        got = await call("GET", f"/executions/{exe['id']}")
        if got["status"] != "pending":
            break
        await asyncio.sleep(0.02)
    assert (got["status"], got["finished_at"]) == ("timed_out", "2001-09-09T01:46:50.000Z")


async def test_a_done_command_is_not_sent_again_while_its_record_is_awaited(api):
    flow, _ = await _setup(api, 1)
    exe = await api.post("/executions", {"flow_id": flow["id"], "target_devices": ["x0"]}, expect=201)
    cmd_id = f"{exe['id']}.x0.exec"
    done(api, "x0", exe["id"], stored=False)

    async def answered():
        return api.app[DB].call(lambda: Command.get_by_id(cmd_id).done)
    await api.until(answered)  # the outbox stops re-sending it ...
    assert (await api.get(f"/executions/{exe['id']}"))["targets"][0]["status"] == "running"  # ... the record is awaited

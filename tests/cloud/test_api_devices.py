"""Provisioning and listing devices."""

from __future__ import annotations

from cloud.appkeys import BOX, DB
from cloud.models import Device
from cloud.secrets import hash_token
from cloud.store.devices import record_status


async def test_provision_returns_credentials_once_and_stores_them_protected(api):
    made = await api.post("/devices", {"id": "dev_001", "board": "unix-sim", "tags": ["lab"],
                                       "environment": "dev"}, expect=201)
    creds = made["credentials"]
    assert made["id"] == "dev_001" and creds["mqtt"]["username"] == "dev_001"
    assert len(bytes.fromhex(creds["hmac_key"])) == 32
    shown = await api.get("/devices/dev_001")
    assert "credentials" not in shown and shown["tags"] == ["lab"] and shown["environment"] == "dev"
    row = api.app[DB].call(Device.get_by_id, "dev_001")
    assert row.password_hash == hash_token(creds["mqtt"]["password"])
    assert creds["hmac_key"] not in row.key_sealed
    assert api.app[BOX].open(row.key_sealed).hex() == creds["hmac_key"]


async def test_provision_hook_registers_the_device_with_the_broker(aiohttp_client, cloud_config):
    from cloud.app import init_app
    from cloud.store import keys as key_store

    seen = []

    async def on_provision(device_id, password):
        seen.append((device_id, password))

    cloud_config.on_provision = on_provision
    app = init_app(cloud_config)
    key = app[DB].call(key_store.create_key, "operator")["key"]
    client = await aiohttp_client(app)
    resp = await client.post("/api/v1/devices", json={"board": "rp2-pico-w"}, headers={"x-api-key": key})
    made = await resp.json()
    assert seen == [(made["id"], made["credentials"]["mqtt"]["password"])]


async def test_a_failing_provision_hook_keeps_nothing_so_a_retry_works(aiohttp_client, cloud_config):
    from cloud.app import init_app
    from cloud.store import keys as key_store

    calls = []

    def on_provision(device_id, password):
        calls.append(device_id)
        if len(calls) == 1:
            raise OSError("Permission denied: the broker refused")

    cloud_config.on_provision = on_provision
    app = init_app(cloud_config)
    headers = {"x-api-key": app[DB].call(key_store.create_key, "operator")["key"]}
    client = await aiohttp_client(app)
    resp = await client.post("/api/v1/devices", json={"id": "k1", "board": "unix-sim"}, headers=headers)
    problem = await resp.json()
    assert resp.status == 502 and "Permission denied" in problem["detail"], problem
    assert (await client.get("/api/v1/devices/k1", headers=headers)).status == 404
    resp = await client.post("/api/v1/devices", json={"id": "k1", "board": "unix-sim"}, headers=headers)
    assert resp.status == 201 and (await resp.json())["credentials"]["mqtt"]["password"]
    assert calls == ["k1", "k1"]


async def test_the_cloud_s_own_broker_names_are_refused_as_device_ids(aiohttp_client, cloud_config):
    from cloud.app import init_app
    from cloud.store import keys as key_store

    cloud_config.mqtt_client_id = "plant-cloud"
    cloud_config.mqtt_url = "mqtt://plant-bridge:pw@127.0.0.1:1"
    app = init_app(cloud_config)
    headers = {"x-api-key": app[DB].call(key_store.create_key, "admin")["key"]}
    client = await aiohttp_client(app)
    for device_id in ("cloud", "ADMIN", "fleetflow-x", "plant-cloud", "Plant-Bridge"):
        resp = await client.post("/api/v1/devices", json={"id": device_id, "board": "unix-sim"}, headers=headers)
        problem = await resp.json()
        assert resp.status == 422 and problem["errors"][0]["pointer"] == "/id", (device_id, problem)
    assert app[DB].call(lambda: Device.select().count()) == 0


async def test_a_broker_that_does_not_delete_the_account_keeps_the_device(aiohttp_client, cloud_config):
    from cloud.app import init_app
    from cloud.store import keys as key_store

    def on_delete(device_id):
        raise OSError("broker away")

    cloud_config.on_delete = on_delete
    app = init_app(cloud_config)
    headers = {"x-api-key": app[DB].call(key_store.create_key, "admin")["key"]}
    client = await aiohttp_client(app)
    assert (await client.post("/api/v1/devices", json={"id": "k2", "board": "unix-sim"}, headers=headers)).status == 201
    resp = await client.delete("/api/v1/devices/k2", headers=headers)
    assert resp.status == 502 and "broker away" in (await resp.json())["detail"]
    assert (await client.get("/api/v1/devices/k2", headers=headers)).status == 200
    assert (await client.delete("/api/v1/devices/nope", headers=headers)).status == 404


async def test_duplicate_ids_conflict_and_bad_bodies_point_at_fields(api):
    await api.post("/devices", {"id": "d1", "board": "unix-sim"}, expect=201)
    await api.post("/devices", {"id": "d1", "board": "unix-sim"}, expect=409)
    problem = await api.post("/devices", {"id": "bad/id", "board": "zx81"}, expect=422)
    assert problem["errors"][0]["pointer"] == "/id"
    problem = await api.post("/devices", {"board": "zx81"}, expect=422)
    assert problem["errors"][0]["pointer"] == "/board"


async def test_list_filters_and_live_state(api):
    await api.post("/devices", {"id": "a", "board": "unix-sim", "tags": ["x"], "environment": "prod"}, expect=201)
    await api.post("/devices", {"id": "b", "board": "unix-sim", "environment": "dev"}, expect=201)
    status = {"state": "online", "fw": "0.1.0", "board": "unix-sim", "types": ["dht", "switch"], "slot": "a",
              "flow": "flow_1", "ver": 2, "seq": 3, "trial": False, "heap": 40000}
    assert api.app[DB].call(record_status, "a", status, 1000.0) is True
    a = await api.get("/devices/a")
    assert (a["online"], a["state"], a["slot"], a["flow"], a["ver"], a["types"]) == \
        (True, "online", "a", "flow_1", 2, ["dht", "switch"])
    assert a["last_seen"].startswith("1970-01-01T00:16:40")
    assert [d["id"] for d in (await api.get("/devices?environment=prod"))["devices"]] == ["a"]
    assert [d["id"] for d in (await api.get("/devices?tag=x"))["devices"]] == ["a"]
    assert [d["id"] for d in (await api.get("/devices?online=false"))["devices"]] == ["b"]
    await api.call("PATCH", "/devices/b", {"tags": ["y"], "environment": "prod"})
    assert [d["id"] for d in (await api.get("/devices?environment=prod"))["devices"]] == ["a", "b"]


async def test_a_device_shows_its_reset_cause_and_clock_skew_from_what_it_reported(api):
    from cloud.bridge import stamp_clock
    from cloud.store.devices import record_health

    await api.post("/devices", {"id": "c", "board": "unix-sim"}, expect=201)
    status = {"state": "online", "slot": None, "reset": "watchdog", "synced": False, "time": None}
    api.app[DB].call(record_status, "c", stamp_clock(status, 1000.0), 1000.0)
    c = await api.get("/devices/c")
    assert (c["reset"], c["time_synced"], c["clock_skew_s"]) == ("watchdog", False, None)
    # synced later: its health says so, 2.5 s behind the cloud's clock
    health = stamp_clock({"runs": 1, "synced": True, "time": 1997.5}, 2000.0)
    api.app[DB].call(record_health, {"c": (health, 2000.0)})
    c = await api.get("/devices/c")
    assert (c["time_synced"], c["clock_skew_s"]) == (True, -2.5)
    assert c["health"]["received_at"] == 2000.0


async def test_run_reports_are_stored_and_listed_per_node(api):
    from cloud.store.runs import ingest

    await api.post("/devices", {"id": "r1", "board": "unix-sim"}, expect=201)
    batch = {"dev": "r1", "dropped": 0, "runs": [
        {"run": n, "flow": "flow_x", "ver": 2, "exec": None, "trigger": "poll:n1", "status": "completed",
         "t_ms": 1000 * n, "us": 800, "logs": [["warning", "n1", "read failed, retry 1/2"]],
         "nodes": [{"id": "n1", "type": "dht", "us": 300, "out": "{'value': 23.1}", "port": 0, "err": None},
                   {"id": "n2", "type": "switch", "us": 40, "out": None, "port": 1, "err": None}]}
        for n in (1, 2)]}
    assert api.app[DB].call(ingest, [("r1", batch, 10.0)]) == 4
    runs = (await api.get("/devices/r1/runs?limit=1"))["runs"]
    assert [r["run"] for r in runs] == [2]
    assert [(n["id"], n["us"], n["port"]) for n in runs[0]["nodes"]] == [("n1", 300, 0), ("n2", 40, 1)]
    assert runs[0]["logs"] == [["warning", "n1", "read failed, retry 1/2"]]
    # a device's run counter restarts (a reboot, an inline run): records stay apart
    again = {"dev": "r1", "dropped": 0, "runs": [
        {"run": 1, "flow": "flow_y", "ver": 1, "status": "failed", "us": 5, "err": "m1: TypeError",
         "nodes": [{"id": "m1", "type": "adc", "us": 5, "out": None, "port": None, "err": "TypeError"}]}]}
    api.app[DB].call(ingest, [("r1", again, 11.0)])
    runs = (await api.get("/devices/r1/runs?limit=3"))["runs"]
    assert [(r["run"], r["flow"], [n["id"] for n in r["nodes"]]) for r in runs] == [
        (1, "flow_y", ["m1"]), (2, "flow_x", ["n1", "n2"]), (1, "flow_x", ["n1", "n2"])]
    assert [r["err"] for r in runs] == ["m1: TypeError", None, None]  # why a run failed is kept
    await api.get("/devices/r1/runs?limit=0", expect=422)
    await api.get("/devices/ghost/runs", expect=404)


async def test_a_tls_cloud_hands_out_its_broker_ca_even_in_a_replayed_answer(aiohttp_client, cloud_config, tmp_path):
    from cloud.app import init_app
    from cloud.store import keys as key_store
    from tools.infra.tls import ensure_tls

    ca = ensure_tls(tmp_path / "tls")
    cloud_config.mqtt_url = "mqtts://cloud:pw@127.0.0.1:1"
    cloud_config.mqtt_ca_file = str(ca.ca)
    app = init_app(cloud_config)
    headers = {"x-api-key": app[DB].call(key_store.create_key, "admin")["key"], "Idempotency-Key": "prov-1"}
    client = await aiohttp_client(app)
    answers = []
    for _ in range(2):
        resp = await client.post("/api/v1/devices", json={"id": "t1", "board": "unix-sim"}, headers=headers)
        assert resp.status == 201
        answers.append(await resp.json())
    assert answers[1] == answers[0] and answers[0]["credentials"]["mqtt"]["ca"] == ca.ca_pem()
    assert answers[0]["credentials"]["mqtt"]["port"] == 1

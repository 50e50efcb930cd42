"""The fleet simulator: profiles and faults planned per device, and a real fleet
(MicroPython processes, broker, cloud) whose faults show where they should."""

from __future__ import annotations

import time

import pytest

from tools.sim import fleet as fleet_mod

IDS = fleet_mod.device_ids(4)


@pytest.mark.parametrize("items, expected", [
    (["2=crash"], {"sim-002": ["crash"]}),
    (["sim-003=net_drop,dead_sensor", "1=boot_loop"], {"sim-003": ["net_drop", "dead_sensor"], "sim-001": ["boot_loop"]}),
    ([], {}),
])
def test_fault_assignments_by_id_or_position(items, expected):
    assert fleet_mod.parse_assignments(items, fleet_mod.FAULTS, IDS, "--fault") == expected


@pytest.mark.parametrize("item, message", [
    ("5=crash", "device 5 is not in 1..4"),
    ("sim-009=crash", "no device 'sim-009'"),
    ("2=melt", "'melt' is not one of"),
    ("2", "write DEVICE="),
])
def test_bad_fault_assignments_say_what_is_wrong(item, message):
    with pytest.raises(fleet_mod.FleetError, match=message):
        fleet_mod.parse_assignments([item], fleet_mod.FAULTS, IDS, "--fault")


@pytest.mark.parametrize("text, expected", [("120,60", (120.0, 60.0)), ("4,2.5", (4.0, 2.5)),
                                            ("60", "write UP,DOWN"), ("5,0", "more than 0")])
def test_net_drop_takes_up_and_down_seconds(text, expected):
    import argparse

    from tools.cli.cmd_sim import _up_down

    if isinstance(expected, tuple):
        assert _up_down(text) == expected
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=expected):
            _up_down(text)


def test_plan_mixes_profiles_and_keeps_faults_per_device():
    specs = fleet_mod.plan(4, profile="mixed", profiles={"sim-004": ["failing"]}, faults={"sim-002": ["crash"]})
    assert [(s.device_id, s.profile, s.faults) for s in specs] == [
        ("sim-001", "steady", []), ("sim-002", "sine", ["crash"]), ("sim-003", "noisy", []),
        ("sim-004", "failing", [])]
    with pytest.raises(fleet_mod.FleetError):
        fleet_mod.plan(0)


@pytest.mark.parametrize("profile, faults, dht", [
    ("sine", [], {"profile": "sine"}),
    ("failing", [], {"profile": "steady", "fault_rate": 0.5}),
    ("steady", ["dead_sensor"], {"script": ["timeout"]}),
    ("steady", ["crash"], {"script": [["garbage", 45.0]]}),
])
def test_sensor_config_per_profile_and_fault(profile, faults, dht):
    got = fleet_mod.sensors_config(fleet_mod.DeviceSpec("d", profile, faults), 0)["dht"]["4"]
    assert {k: got[k] for k in dht} == dht


def test_a_fleet_with_faults_behaves_as_each_fault_says(tmp_path, procs_mentioning):
    from tools.infra.stack import Stack
    from tools.sim.demo import EXAMPLE, HEALTH
    import json

    workdir = tmp_path / "fleet"
    with Stack(tmp_path / "stack", log=lambda m: None) as stack:
        api = stack.api
        fleet = fleet_mod.Fleet(workdir, 4, mqtt_host=stack.broker.host, mqtt_port=stack.broker.port,
                                provision=stack.provision, faults={"sim-002": ["crash"], "sim-003": ["net_drop"],
                                                                    "sim-004": ["boot_loop"]},
                                net_drop_s=(4, 3), log=lambda m: None)
        with fleet:
            def online():
                return {d["id"] for d in api.list_devices() if d["online"]}

            deadline = time.monotonic() + 30
            while not {"sim-001", "sim-002", "sim-003"} <= online() and time.monotonic() < deadline:
                time.sleep(0.3)
            assert {"sim-001", "sim-002", "sim-003"} <= online()

            # crash: the flow's nodes raise on the garbage reading; on trial the device rolls back
            flow = api.create_flow(json.loads(EXAMPLE.read_text()))
            api.publish_flow(flow["id"])
            dep = api.create_deployment({"flow_id": flow["id"], "strategy": "all_at_once",
                                         "target_devices": ["sim-001", "sim-002"],
                                         "config": {"health": HEALTH, "failure_threshold": 100},
                                         "rehearse": False})  # the faults are on the real devices
            api.deployment_action(dep["id"], "start")
            deadline = time.monotonic() + 40
            while api.deployment(dep["id"])["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.3)
            targets = {t["device_id"]: t for t in api.deployment(dep["id"])["targets"]}
            assert targets["sim-001"]["status"] == "success"
            assert targets["sim-002"]["status"] == "failed" and "error_rate" in targets["sim-002"]["reason"]

            # net_drop: the link went down at least once, and the device is back online
            link = fleet.links["sim-003"]
            deadline = time.monotonic() + 20
            while link.drops < 1 and time.monotonic() < deadline:
                time.sleep(0.3)
            assert link.drops >= 1
            deadline = time.monotonic() + 20
            while not (link.up and "sim-003" in online()) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert "sim-003" in online()

            # boot_loop: the board keeps resetting, and boots again each time
            assert fleet.power_cycles["sim-004"] >= 2
            assert fleet.devices["sim-004"].log().count("online as sim-004") >= 1, fleet.devices["sim-004"].log()
        assert fleet.devices == {}
    assert procs_mentioning(str(workdir)) == []


def test_sim_command_runs_a_fleet_with_its_own_cloud_stops_cleanly_and_restarts_online(tmp_path, procs_mentioning):
    # The second run on the same workdir has a new broker (another port, no
    # accounts yet) and the same cloud database and flash images: issue 9 saw
    # every device stay offline (the images kept the old port) unless --fresh.
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tools.cli.client import Client

    workdir = tmp_path / "sim"
    for run in ("first", "restart"):
        proc = subprocess.Popen([str(Path(sys.executable).with_name("fleetflow")), "sim", "--devices", "3",
                                 "--fault", "3=dead_sensor", "--workdir", str(workdir), "--duration", "600", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            info = json.loads(proc.stdout.readline())
            assert info["devices"] == ["sim-001", "sim-002", "sim-003"]
            api = Client(info["api"].removesuffix("/api/v1"), info["api_key"])
            deadline = time.monotonic() + 30
            while sum(d["online"] for d in api.list_devices()) < 3 and time.monotonic() < deadline:
                time.sleep(0.3)
            assert sorted(d["id"] for d in api.list_devices() if d["online"]) == info["devices"], run
            assert procs_mentioning(str(workdir))
            proc.send_signal(2)  # Ctrl-C
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "sim: stopped, no device left running" in err
        assert procs_mentioning(str(workdir)) == []


def test_sim_provisions_through_a_running_cloud(tmp_path, procs_mentioning):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tools.infra.stack import Stack

    workdir = tmp_path / "sim"
    with Stack(tmp_path / "stack", log=lambda m: None) as stack:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("fleetflow")), "sim", "--devices", "2",
                                 "--prefix", "lab", "--cloud", stack.api.url, "--api-key", stack.api.api_key,
                                 "--workdir", str(workdir), "--duration", "600", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            info = json.loads(proc.stdout.readline())
            assert info["devices"] == ["lab-001", "lab-002"] and info["api_key"] is None  # not ours to show
            deadline = time.monotonic() + 30
            while sum(d["online"] for d in stack.api.list_devices()) < 2 and time.monotonic() < deadline:
                time.sleep(0.3)
            devices = stack.api.list_devices()
            assert [(d["id"], d["online"], d["tags"]) for d in devices] == [("lab-001", True, ["sim"]),
                                                                            ("lab-002", True, ["sim"])]
            proc.send_signal(2)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert procs_mentioning(str(workdir)) == []
    # the credentials the cloud showed once are kept for the next run
    assert set(json.loads((workdir / "credentials.json").read_text())) == {"lab-001", "lab-002"}


@pytest.mark.broker
def test_the_idle_fleet_bench_brings_every_device_online_and_reads_proc():
    # tiny sizes: the figures are the bench's to print, not this test's to time
    import argparse

    from tools.bench import fleet as fleet_bench

    result = fleet_bench.run(argparse.Namespace(devices=2, idle_s=1.0, online_timeout_s=None))
    assert result["ok"] and result["devices_online"] == 2, result
    assert result["idle_cpu_pct_per_device"] >= 0 and result["rss_bytes_per_device"] > result["pss_bytes_per_device"] > 0
    assert result["ping_ms_median"] > 0
    # a count of wake-ups, not a time: an idle device's loop and its
    # simulated watchdog each wake about once a second. The watchdog's
    # thread once slept with the unix port's sleep_ms, which waits in 1 ms
    # slices (~1,000 wake-ups a second, 2 % of a core a device)
    assert 0 < result["wakeups_per_s_per_device"] < 100, result
    assert fleet_bench.run(argparse.Namespace(devices=0, idle_s=1.0, online_timeout_s=None))["ok"] is False

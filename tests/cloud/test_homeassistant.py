"""Home Assistant MQTT discovery: the pure mapping from a device and its flow
to discovery configs, and `serve --ha-discovery` seen as Home Assistant sees
it: subscribed to homeassistant/# on the real broker while a simulated
device gets a flow, a new flow, a switch command, and is deleted."""

from __future__ import annotations

import json
import time

import pytest

from cloud.homeassistant import discovery, dht_states, flow_nodes
from tools.sim.demo import EXAMPLE

DEVICE = {"id": "kitchen-1", "name": "Kitchen", "board": "esp32-devkitc", "fw": "0.1.0"}
RELAY = {"name": "Relay", "definition": {
    "nodes": [{"id": "b1", "type": "gpio_in", "name": "Button", "config": {"pin": 5, "edge": "rising"}},
              {"id": "r1", "type": "gpio_out", "name": "Relay", "config": {"pin": 2, "mode": "set", "value": 1}}],
    "connections": [{"source": "b1", "target": "r1"}]}}


def test_a_dht_and_an_mqtt_out_become_sensors_with_what_home_assistant_needs():
    configs = discovery(DEVICE, json.loads(EXAMPLE.read_text()))
    assert sorted(configs) == ["homeassistant/sensor/fleetflow_kitchen-1/n1_humidity/config",
                               "homeassistant/sensor/fleetflow_kitchen-1/n1_temperature/config",
                               "homeassistant/sensor/fleetflow_kitchen-1/out_alert/config"]
    temp = configs["homeassistant/sensor/fleetflow_kitchen-1/n1_temperature/config"]
    assert (temp["device_class"], temp["unit_of_measurement"], temp["state_class"]) == ("temperature", "°C", "measurement")
    assert temp["unique_id"] == "fleetflow_kitchen-1_n1_temperature" and temp["state_topic"] == "ff/kitchen-1/ha/n1"
    assert temp["device"] == {"identifiers": ["fleetflow_kitchen-1"], "name": "Kitchen", "manufacturer": "fleetflow",
                              "model": "esp32-devkitc", "sw_version": "0.1.0"}
    assert temp["availability"] == [{"topic": "ff/kitchen-1/status", "value_template": "{{ value_json.state }}",
                                     "payload_available": "online", "payload_not_available": "offline"}]
    assert "value_json.flow" in temp["json_attributes_template"] and "value_json.fw" in temp["json_attributes_template"]
    humidity = configs["homeassistant/sensor/fleetflow_kitchen-1/n1_humidity/config"]
    assert (humidity["device_class"], humidity["unit_of_measurement"]) == ("humidity", "%")
    assert configs["homeassistant/sensor/fleetflow_kitchen-1/out_alert/config"]["state_topic"] == "ff/kitchen-1/out/alert"


def test_a_gpio_out_becomes_a_switch_and_step_form_flows_count_too():
    (topic, switch), = discovery(DEVICE, RELAY).items()
    assert topic == "homeassistant/switch/fleetflow_kitchen-1/r1/config"
    assert switch["command_topic"] == "ff/kitchen-1/ha/r1/set" and switch["state_topic"] == "ff/kitchen-1/ha/r1/state"
    assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
    steps = {"steps": [{"node": "dht", "params": {"pin": 4}}, {"node": "log", "params": {}}]}
    assert [n["id"] for n in flow_nodes(steps)] == ["s1", "s2"]
    assert len(discovery(DEVICE, steps)) == 2
    assert discovery(DEVICE, None) == {}


@pytest.mark.parametrize("out, expected", [
    ("{'humidity': 45, 'value': 23.0, 'temperature': 23.0}", {"n1": {"temperature": 23.0, "humidity": 45}}),
    ("{'humidity': 45, 'value': 23.0, 'tempera", {}),  # cut at 200 characters: skipped
    ("__import__('os')", {}),  # never evaluated
])
def test_dht_states_come_from_the_node_records(out, expected):
    batch = {"runs": [{"nodes": [{"id": "n1", "type": "dht", "out": out, "err": None}]}]}
    assert dht_states(batch, json.loads(EXAMPLE.read_text())) == expected


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_serve_with_discovery_as_home_assistant_sees_it(tmp_path, broker):
    from tools.infra.mqtt_watch import Watch
    from tools.sim.simdevice import SimDevice
    from tools.infra.stack import Stack

    def configs(seen) -> dict[str, dict | None]:
        out: dict = {}
        for topic, payload, _ in seen:
            if topic.startswith("homeassistant/"):
                out[topic] = json.loads(payload) if payload else None
        return out

    with Stack(tmp_path / "stack", log=lambda m: None, ha_discovery=True, prefer_broker=broker) as stack:
        if stack.broker.kind != broker:
            pytest.skip(f"{broker} is not installed here (the stack fell back to {stack.broker.kind})")
        api = stack.api
        creds = api.provision_device("ha-1", board="unix-sim", name="Porch")["credentials"]
        example = api.create_flow(json.loads(EXAMPLE.read_text()))
        api.publish_flow(example["id"])
        relay = api.create_flow({**RELAY, "definition": {**RELAY["definition"], "nodes": [
            {"id": "b1", "type": "gpio_in", "name": "Button", "config": {"pin": 5, "edge": "rising"}},
            {"id": "r1", "type": "gpio_out", "name": "Relay", "config": {"pin": 2, "mode": "set", "value": 1}}]}})
        api.publish_flow(relay["id"])
        with Watch(stack, "homeassistant/#", "ff/+/ha/#") as ha, \
                SimDevice(tmp_path / "dev", "ha-1", creds["hmac_key"], stack.broker.host, stack.broker.port,
                          creds["mqtt"]["password"], sensors={"dht": {"4": {"profile": "sine"}}},
                          mqtt_ca=creds["mqtt"]["ca"]):
            def deploy(flow_id):
                dep = api.create_deployment({"flow_id": flow_id, "strategy": "all_at_once", "target_devices": ["ha-1"],
                                             "config": {"health": {"runs": 0, "seconds": 1}}})
                api.deployment_action(dep["id"], "start")
                deadline = time.monotonic() + 60
                while api.deployment(dep["id"])["status"] in ("pending", "running") and time.monotonic() < deadline:
                    time.sleep(0.3)
                assert api.deployment(dep["id"])["status"] == "completed"

            deploy(example["id"])
            temp_topic = "homeassistant/sensor/fleetflow_ha-1/n1_temperature/config"
            assert ha.wait(lambda seen: configs(seen).get(temp_topic), 30), configs(ha.messages())
            temp = configs(ha.messages())[temp_topic]
            assert temp["device"]["name"] == "Porch" and temp["device"]["model"] == "unix-sim"
            assert temp["device_class"] == "temperature" and temp["unit_of_measurement"] == "°C"
            with Watch(stack, "homeassistant/#") as late:  # a Home Assistant started later gets them retained
                assert late.wait(lambda seen: any(t == temp_topic and retained for t, _p, retained in seen), 10)
            # the sensor's state, as Home Assistant would read it with the value_template
            state = ha.wait(lambda seen: [json.loads(p) for t, p, _ in seen if t == "ff/ha-1/ha/n1"], 30)
            assert state and isinstance(state[-1]["temperature"], float) and isinstance(state[-1]["humidity"], int)
            # availability: the retained status Home Assistant reads says online
            assert api.get_device("ha-1")["online"]

            deploy(relay["id"])  # the flow changes: the sensors go, a switch comes
            switch_topic = "homeassistant/switch/fleetflow_ha-1/r1/config"
            assert ha.wait(lambda seen: configs(seen).get(switch_topic) and configs(seen).get(temp_topic, 1) is None, 30)
            now = configs(ha.messages())
            assert [t for t, v in now.items() if v is not None] == [switch_topic]
            switch = now[switch_topic]

            ha.publish(switch["command_topic"], "OFF")  # Home Assistant turns the relay off
            assert ha.wait(lambda seen: any(t == switch["state_topic"] and p == b"OFF" for t, p, _ in seen), 30)
            exes = api.get("/executions", flow_id=relay["id"])["executions"]
            assert exes and exes[0]["overrides"]["params"] == {"r1": {"value": 0}}

            api.request("DELETE", "/devices/ha-1")  # the device goes: so do its entities
            assert ha.wait(lambda seen: configs(seen).get(switch_topic, 1) is None, 30)

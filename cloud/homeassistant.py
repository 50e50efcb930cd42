"""Home Assistant MQTT discovery (`fleetflow serve --ha-discovery`).

Each device appears in Home Assistant as a device whose entities are what
its active flow exposes, with the payloads Home Assistant's MQTT integration
documents (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery):

- a `dht` node: two sensors, temperature (°C) and humidity (%), with
  `device_class` and `state_class: measurement`; their state is published
  by the cloud, retained, on `ff/<dev>/ha/<node>` as `{"temperature",
  "humidity"}` from the device's run records;
- an `mqtt_out` node: a sensor on the topic the device publishes
  (`ff/<dev>/out/<topic>`, the message's `value`);
- a `gpio_out` node: a switch; turning it on or off (`ff/<dev>/ha/<node>/set`,
  `ON`/`OFF`) runs the active flow once on that device as an execution with
  the node's `value` overridden (1/0), and the state follows on
  `ff/<dev>/ha/<node>/state`;
- availability from the device's retained `ff/<dev>/status` (`online`/`offline`),
  and firmware, board, flow and version as attributes from the same message.

Configs go to `homeassistant/<component>/fleetflow_<dev>/<object>/config`,
retained; when a deployment changes the flow, entities that are gone get an
empty retained config (Home Assistant removes them), and so does every
entity of a deleted device.

`discovery()` is the pure core (device + flow body -> config topic ->
payload); `HomeAssistant` is the shell: it hears statuses and run reports
from the bridge's hooks and talks to the broker over its own connection.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re

from shared_schema.models import step_id

log = logging.getLogger("fleetflow.ha")

DISCOVERY_PREFIX = "homeassistant"
_SAFE = re.compile(r"[^a-zA-Z0-9_-]")
DHT_FIELDS = (("temperature", "temperature", "°C"), ("humidity", "humidity", "%"))


def object_id(text: str) -> str:
    """A topic level Home Assistant accepts as node or object id ([a-zA-Z0-9_-])."""
    return _SAFE.sub("_", text)


def flow_nodes(body: dict | None) -> list[dict]:
    """The nodes of a flow body, graph form or step form, as {id, type, name, config}."""
    if not isinstance(body, dict):
        return []
    definition = body.get("definition")
    if isinstance(definition, dict) and isinstance(definition.get("nodes"), list):
        return [{"id": str(n.get("id")), "type": str(n.get("type", "")).replace("-", "_"), "name": n.get("name"),
                 "config": n.get("config") or {}} for n in definition["nodes"] if isinstance(n, dict)]
    steps = body.get("steps")
    if isinstance(steps, list):
        return [{"id": step_id(i), "type": str(s.get("node", "")).replace("-", "_"), "name": None,
                 "config": s.get("params") or {}} for i, s in enumerate(steps) if isinstance(s, dict)]
    return []


def state_topic(prefix: str, device_id: str, node_id: str) -> str:
    return f"{prefix}/{device_id}/ha/{object_id(node_id)}"


def discovery(device: dict, body: dict | None, prefix: str = "ff", disc: str = DISCOVERY_PREFIX) -> dict[str, dict]:
    """Config topic -> discovery payload for every entity of `device` (a
    device document: id, name, board, fw) running the flow `body` (pure)."""
    dev_id = device["id"]
    node = f"fleetflow_{object_id(dev_id)}"
    status = f"{prefix}/{dev_id}/status"
    base = {
        "device": {"identifiers": [node], "name": device.get("name") or dev_id, "manufacturer": "fleetflow",
                   "model": device.get("board"), "sw_version": device.get("fw")},
        "availability": [{"topic": status, "value_template": "{{ value_json.state }}",
                          "payload_available": "online", "payload_not_available": "offline"}],
        "json_attributes_topic": status,
        "json_attributes_template": "{{ {'firmware': value_json.fw, 'board': value_json.board, "
                                    "'flow': value_json.flow, 'version': value_json.ver} | tojson }}",
        "origin": {"name": "fleetflow"},
    }
    out: dict[str, dict] = {}

    def add(component: str, obj: str, payload: dict) -> None:
        unique = f"{node}_{obj}"
        out[f"{disc}/{component}/{node}/{obj}/config"] = {**base, "unique_id": unique, "object_id": unique, **payload}

    for n in flow_nodes(body):
        label = n["name"] or n["id"]
        oid = object_id(n["id"])
        if n["type"] == "dht":
            for field, device_class, unit in DHT_FIELDS:
                add("sensor", f"{oid}_{field}", {
                    "name": f"{label} {field}", "state_topic": state_topic(prefix, dev_id, n["id"]),
                    "value_template": "{{ value_json.%s }}" % field, "device_class": device_class,
                    "unit_of_measurement": unit, "state_class": "measurement"})
        elif n["type"] == "mqtt_out" and isinstance(n["config"].get("topic"), str):
            topic = n["config"]["topic"]
            add("sensor", f"out_{object_id(topic)}", {
                "name": f"{label} ({topic})", "state_topic": f"{prefix}/{dev_id}/out/{topic}",
                "value_template": "{{ value_json.value if value_json is mapping and 'value' in value_json "
                                  "else value }}"})
        elif n["type"] == "gpio_out":
            add("switch", oid, {
                "name": label, "command_topic": state_topic(prefix, dev_id, n["id"]) + "/set",
                "state_topic": state_topic(prefix, dev_id, n["id"]) + "/state",
                "payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF"})
    return out


def dht_states(batch: dict, body: dict | None) -> dict[str, dict]:
    """Node id -> {"temperature", "humidity"}: the latest reading of each dht
    node of the flow in a run report (its node records' output summaries)."""
    dht = {n["id"] for n in flow_nodes(body) if n["type"] == "dht"}
    states: dict[str, dict] = {}
    for run in batch.get("runs") or []:
        for rec in run.get("nodes") or []:
            if rec.get("id") in dht and not rec.get("err") and isinstance(rec.get("out"), str):
                try:
                    value = ast.literal_eval(rec["out"])  # the device's summary: a dict's repr, bounded
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    continue
                if isinstance(value, dict):
                    reading = {k: value[k] for k, _c, _u in DHT_FIELDS if isinstance(value.get(k), (int, float))}
                    if reading:
                        states[rec["id"]] = reading
    return states


class HomeAssistant:
    """The shell: publishes discovery configs and states, and turns switch
    commands into executions. `run()` keeps its own MQTT connection."""

    def __init__(self, config, db, driver, box, disc: str = DISCOVERY_PREFIX):
        self.config, self.db, self.driver, self.box = config, db, driver, box
        self.prefix, self.disc = config.topic_prefix, disc
        self.shown: dict[str, set[str]] = {}  # device -> config topics published
        self.running: dict[str, tuple] = {}  # device -> (flow, ver) its configs describe
        self.bodies: dict[tuple, dict | None] = {}  # (flow, ver) -> flow body
        self.queue: asyncio.Queue = asyncio.Queue()

    # -- hooks (called on the loop by the bridge and the delete view) --
    def on_status(self, device_id: str, status: dict, _now: float) -> None:
        if status.get("state") == "online":
            self.queue.put_nowait(("status", device_id, status))

    def on_runs(self, reports: list) -> None:
        for device_id, batch in reports:
            if device_id in self.running:
                self.queue.put_nowait(("runs", device_id, batch))

    async def on_delete(self, device_id: str) -> None:
        self.queue.put_nowait(("delete", device_id, None))

    # -- the connection --
    async def run(self) -> None:
        import aiomqtt

        parts = self.config.mqtt_parts()
        backoff = self.config.mqtt_reconnect_s
        if self.config.ha_grant is not None:
            try:
                await self.config.ha_grant()
            except Exception as exc:  # noqa: BLE001 - discovery may still work (an ACL made by hand)
                log.warning("Home Assistant discovery: could not give the cloud's account %s/#: %s", self.disc, exc)
        while True:
            try:
                async with aiomqtt.Client(parts["host"], parts["port"], username=parts["username"],
                                          password=parts["password"], identifier=self.config.mqtt_client_id + "-ha",
                                          tls_context=self.config.mqtt_tls_context()) as client:
                    await client.subscribe(f"{self.prefix}/+/ha/+/set", qos=1)
                    backoff = self.config.mqtt_reconnect_s
                    self.running.clear()  # (re)publish everything on a new link
                    await asyncio.gather(self._work(client), self._commands(client))
            except aiomqtt.MqttError as exc:
                log.warning("Home Assistant discovery: MQTT link lost (%s); retrying in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _work(self, client) -> None:
        while True:
            kind, device_id, data = await self.queue.get()
            if kind == "status":
                await self._describe(client, device_id, data)
            elif kind == "runs":
                body = self.bodies.get(self.running.get(device_id))
                for node_id, reading in dht_states(data, body).items():
                    await client.publish(state_topic(self.prefix, device_id, node_id), json.dumps(reading),
                                         qos=0, retain=True)
            elif kind == "delete":
                await self._publish_configs(client, device_id, {})
                self.running.pop(device_id, None)

    async def _describe(self, client, device_id: str, status: dict) -> None:
        key = (status.get("flow"), status.get("ver"))
        if self.running.get(device_id) == key:
            return
        from cloud.store import devices as device_store

        device = await self.db.read(device_store.get_device, device_id)
        if key not in self.bodies:
            self.bodies[key] = await self.db.read(_flow_body, *key) if key[0] else None
        self.running[device_id] = key
        await self._publish_configs(client, device_id, discovery({**device, **status, "id": device_id},
                                                                 self.bodies[key], self.prefix, self.disc))

    async def _publish_configs(self, client, device_id: str, configs: dict[str, dict]) -> None:
        for topic in self.shown.get(device_id, set()) - set(configs):
            await client.publish(topic, b"", qos=1, retain=True)  # Home Assistant removes the entity
        for topic, payload in configs.items():
            await client.publish(topic, json.dumps(payload, sort_keys=True), qos=1, retain=True)
        self.shown[device_id] = set(configs)

    async def _commands(self, client) -> None:
        async for message in client.messages:
            parts = str(message.topic).split("/")
            if len(parts) != 5:
                continue
            device_id, node = parts[1], parts[3]
            wanted = message.payload.decode(errors="replace").strip().upper()
            if wanted not in ("ON", "OFF"):
                log.warning("Home Assistant: %s wants %r for %s; ON or OFF", device_id, wanted, node)
                continue
            try:
                await self._switch(client, device_id, node, wanted)
            except Exception:  # noqa: BLE001 - a refused execution is logged; the connection goes on
                log.exception("Home Assistant: switching %s %s %s failed", device_id, node, wanted)

    async def _switch(self, client, device_id: str, node: str, wanted: str) -> None:
        from cloud.store import executions

        flow, ver = self.running.get(device_id, (None, None))
        body = self.bodies.get((flow, ver))
        node_id = next((n["id"] for n in flow_nodes(body) if object_id(n["id"]) == node and n["type"] == "gpio_out"),
                       None)
        if flow is None or node_id is None:
            log.warning("Home Assistant: %s has no switch %s in its flow", device_id, node)
            return
        request = {"flow_id": flow, "version": ver, "target_devices": [device_id],
                   "overrides": {"params": {node_id: {"value": 1 if wanted == "ON" else 0}}}}
        doc, outgoing = await self.db.run(executions.create_execution, request, self.box, self.config.clock())
        self.driver.send(outgoing)
        log.info("Home Assistant: %s %s %s: execution %s", device_id, node_id, wanted, doc["id"])
        await client.publish(state_topic(self.prefix, device_id, node_id) + "/state", wanted, qos=1, retain=True)


def _flow_body(flow_id: str, version: int | None) -> dict | None:
    from cloud.models import FlowVersion

    if version is None:
        return None
    row = FlowVersion.get_or_none((FlowVersion.flow == flow_id) & (FlowVersion.version == version))
    return row.body if row is not None else None

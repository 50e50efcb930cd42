"""The MQTT bridge: one aiomqtt client that hears every device's status,
ack, health and runs, sends commands, and reconnects by itself.

It keeps the last reported state of each device in memory (`live`) and in
the database (status at once, health batched), and hands acks to the
rollout driver. It uses a persistent session (clean_session off, fixed
client id), so acks published while the cloud is down wait in the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiomqtt
from pydantic import ValidationError
from shared_schema.messages import Ack, Health, RunsBatch, Status
from shared_schema.topics import Topics, TopicError

from cloud.config import Config
from cloud.db import Database
from cloud.store import devices as device_store
from cloud.store import runs as run_store

log = logging.getLogger("fleetflow.bridge")
# aiomqtt warns for every publish beyond ten in flight; many in flight is the
# point when a batch goes out, so only its errors are worth showing.
mqtt_log = logging.getLogger("fleetflow.bridge.mqtt")
mqtt_log.setLevel(logging.ERROR)
HEALTH_FLUSH_S = 2.0
RUNS_FLUSH_S = 0.5
RUNS_FLUSH_NODES = 5000  # flush sooner when this many node records wait
MAX_BACKOFF_S = 30.0
INFLIGHT = 512  # QoS 1 messages in flight at once: a big batch is not sent one round trip at a time


class Bridge:
    def __init__(self, config: Config, db: Database):
        self.config = config
        self.db = db
        self.topics = Topics(config.topic_prefix)
        self.live: dict[str, dict] = {}  # device id -> {"status":..., "health":...}
        self.connected = asyncio.Event()
        self.on_ack = None  # callable(device_id, Ack) set by the driver
        self.on_online = None  # async callable(device_id): a device came (back) online
        self.on_connect = None  # async callable(): (re)connected to the broker
        self._client: aiomqtt.Client | None = None
        self._health: dict[str, tuple[dict, float]] = {}
        self._runs: list[tuple[str, dict, float]] = []
        self._runs_nodes = 0
        self._runs_due = asyncio.Event()
        self.received = 0

    async def run(self) -> None:
        """Connect, listen, and reconnect with backoff, until cancelled."""
        parts = self.config.mqtt_parts()
        backoff = self.config.mqtt_reconnect_s
        while True:
            try:
                async with aiomqtt.Client(parts["host"], parts["port"], username=parts["username"],
                                          password=parts["password"], identifier=self.config.mqtt_client_id,
                                          clean_session=False, keepalive=30,
                                          max_inflight_messages=INFLIGHT, logger=mqtt_log) as client:
                    for topic, qos in self.topics.cloud_subscriptions():
                        await client.subscribe(topic, qos=qos)
                    self._client = client
                    self.connected.set()
                    backoff = self.config.mqtt_reconnect_s
                    log.info("connected to mqtt://%s:%s", parts["host"], parts["port"])
                    if self.on_connect:
                        asyncio.get_running_loop().create_task(self.on_connect())
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT link lost or refused (%s); retrying in %.1fs", exc, backoff)
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def flush_health(self) -> None:
        """Write the health reports heard since the last flush, until cancelled."""
        while True:
            await asyncio.sleep(HEALTH_FLUSH_S)
            if self._health:
                batch, self._health = self._health, {}
                try:
                    await self.db.run(device_store.record_health, batch)
                except Exception:  # a failed write must not stop the bridge
                    log.exception("could not store health reports")

    async def flush_runs(self) -> None:
        """Store the run reports heard, in bulk, until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._runs_due.wait(), RUNS_FLUSH_S)
            except asyncio.TimeoutError:
                pass
            self._runs_due.clear()
            await self.store_runs()

    async def store_runs(self) -> None:
        if not self._runs:
            return
        batch, self._runs, self._runs_nodes = self._runs, [], 0
        try:
            await self.db.run(run_store.ingest, batch)
        except Exception:  # a failed write must not stop the bridge
            log.exception("could not store %d run batches", len(batch))

    async def publish(self, device_id: str, messages: list[dict]) -> bool:
        """Send a command (and its chunks); False when not connected."""
        client = self._client
        if client is None:
            return False
        topic = self.topics.cmd(device_id)
        try:
            for message in messages:
                await client.publish(topic, json.dumps(message, separators=(",", ":")), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("could not send to %s: %s", device_id, exc)
            return False
        return True

    async def _dispatch(self, topic: str, payload) -> None:
        self.received += 1
        try:
            device_id, kind, _ = self.topics.parse(topic)
            body = json.loads(payload)
        except (TopicError, ValueError) as exc:
            log.debug("ignored message on %s: %s", topic, exc)
            return
        now = self.config.clock()
        try:
            if kind == "status":
                status = Status.model_validate(body)
                doc = status.model_dump(mode="json")
                self.live.setdefault(device_id, {})["status"] = doc
                came_online = await self.db.run(device_store.record_status, device_id, doc, now)
                if came_online and self.on_online:
                    await self.on_online(device_id)
            elif kind == "ack":
                ack = Ack.model_validate(body)
                if self.on_ack:
                    self.on_ack(device_id, ack)
            elif kind == "runs":
                batch = RunsBatch.model_validate(body).model_dump(mode="json")
                self._runs.append((device_id, batch, now))
                self._runs_nodes += sum(len(r["nodes"]) for r in batch["runs"])
                if self._runs_nodes >= RUNS_FLUSH_NODES:
                    self._runs_due.set()
            elif kind == "health":
                health = Health.model_validate(body).model_dump(mode="json")
                self.live.setdefault(device_id, {})["health"] = health
                self._health[device_id] = (health, now)
        except ValidationError as exc:
            log.info("malformed %s from %s: %s", kind, device_id, exc.errors()[:1])
        except Exception:  # one bad message must not take the bridge down
            log.exception("failed to handle %s from %s", kind, device_id)

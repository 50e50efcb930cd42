"""The MQTT bridge: one aiomqtt client that hears every device's status,
ack, health and runs, sends commands, and reconnects by itself.

It keeps the last reported state of each device in memory (`live`) and in
the database (status at once, health batched), and hands acks to the
rollout driver. It uses a persistent session (clean_session off, fixed
client id), so acks published while the cloud is down wait in the broker.

Nothing acknowledged is lost (docs/decisions.md, "Acknowledged data";
the bookkeeping is cloud/inbox.py's, with its rules):
- QoS 1 messages are acked by hand (paho's manual_ack), in the order they
  came, once handled: a run report once its transaction has committed,
  anything else once dispatched. Until then the broker holds the message
  for our session and sends it again when we reconnect (after a crash too).
- Run reports are stored as soon as no other message waits (a group commit:
  a burst is one transaction, a lone report is not held back), or when
  RUNS_FLUSH_MESSAGES or RUNS_FLUSH_NODES wait, or after RUNS_FLUSH_S.
- A database that can't be reached keeps the reports unacked and retried; a
  report the database refuses on its own (its text or numbers) is logged
  and acked, so it is not redelivered forever.
- Commands waiting for an answer are sent again at once when the cloud
  reconnects (`on_connect`), and to a device when it comes back: a status
  heard live (not a retained copy) for the first time on this link, or a
  device that was offline (`on_online`).

Replicas (Config.replica; docs/decisions.md, "Replicas"): acks, health and
run reports come through shared subscriptions (`$share/<group>/ff/+/ack`),
so the broker hands each to one replica; status is a plain subscription on
every replica (retained copies are not sent to a shared subscription, and
they tell a replica that (re)connects which devices are online). A replica
connects with a clean session under a client id of its own: Mosquitto keeps
handing an offline persistent member of a share group its turn of the
messages, which would sit in a dead replica's queue; a clean session's
subscriptions end with its connection, and the rest go to the replicas
alive. What was in flight to a replica that died is lost to it: acks come
again (a command re-sent is acked again), run reports in flight do not.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiomqtt
import paho.mqtt.client as paho_mqtt
import peewee
from pydantic import ValidationError
from shared_schema.messages import Ack, Health, RunsBatch, Status
from shared_schema.topics import Topics, TopicError

from cloud.config import Config
from cloud.db import Database
from cloud.inbox import Inbox, Report, digest
from cloud.mqttio import batched
from cloud.store import devices as device_store
from cloud.store import runs as run_store

log = logging.getLogger("fleetflow.bridge")
# aiomqtt warns for every publish beyond ten in flight; many in flight is the
# point when a batch goes out, so only its errors are worth showing.
mqtt_log = logging.getLogger("fleetflow.bridge.mqtt")
mqtt_log.setLevel(logging.ERROR)
HEALTH_FLUSH_S = 2.0
RUNS_FLUSH_S = 0.5  # the longest a run report waits for its transaction
RUNS_FLUSH_NODES = 5000  # flush sooner when this many node records wait
# ... or this many messages: well under the broker's in-flight window
# (Mosquitto's max_inflight_messages, 100 in tools/infra/broker.py), which stops
# sending to a client that holds that many unacked.
RUNS_FLUSH_MESSAGES = 50
# Errors that say the database could not be reached or had to give up (the
# report may be stored on a later try), as opposed to one refusing the data.
DB_UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError)
MAX_BACKOFF_S = 30.0
INFLIGHT = 512  # QoS 1 messages in flight at once: a big batch is not sent one round trip at a time


class Bridge:
    def __init__(self, config: Config, db: Database):
        self.config = config
        self.db = db
        self.topics = Topics(config.topic_prefix)
        self.replicated = config.replica is not None
        self.share_group = config.mqtt_share_group if self.replicated else None
        self.live: dict[str, dict] = {}  # device id -> {"status":..., "health":...}
        self.connected = asyncio.Event()
        self.on_ack = None  # callable(device_id, Ack) set by the driver
        self.on_online = None  # async callable(device_id): a device came (back) online
        self.on_connect = None  # async callable(): (re)connected to the broker
        self.on_status = None  # callable(device_id, status dict, now): a status report was stored
        self.on_runs = None  # callable([(device_id, RunsBatch dict)]): run reports were stored
        self.on_health = None  # callable(device_id, health dict, now): a health report was heard
        self._client: aiomqtt.Client | None = None
        self._health: dict[str, tuple[dict, float]] = {}
        self.inbox = Inbox()  # acks owed and run reports waiting
        self._background: set[asyncio.Task] = set()  # resends started by on_connect/on_online
        self._runs_due = asyncio.Event()
        self._heard_live: set[str] = set()  # devices heard saying online on this link
        self.received = 0
        self.refused_runs = 0  # run reports the database refused (logged, acked, not stored)
        self._published: dict[int, asyncio.Future] = {}  # mid -> True once the broker acked it (publish)

    async def run(self) -> None:
        """Connect, listen, and reconnect with backoff, until cancelled."""
        parts = self.config.mqtt_parts()
        tls_context = self.config.mqtt_tls_context()
        backoff = self.config.mqtt_reconnect_s
        while True:
            try:
                # One process alone keeps a persistent session; a replica a
                # clean one (module doc, "Replicas").
                client = aiomqtt.Client(parts["host"], parts["port"], username=parts["username"],
                                        password=parts["password"], identifier=self.config.bridge_client_id(),
                                        clean_session=self.replicated, keepalive=30, tls_context=tls_context,
                                        max_inflight_messages=INFLIGHT, logger=mqtt_log)
                batched(client)  # reads and writes in bulk (cloud/mqttio.py)
                _manual_acks(client)
                _on_published(client, self._on_published)
                async with client:
                    self._new_link()
                    for topic, qos in self.topics.cloud_subscriptions(self.share_group):
                        granted = await client.subscribe(topic, qos=qos)
                        if any(_refused(g) for g in granted):
                            log.error("the broker refused the subscription %s%s", topic, (
                                ": replicas need shared subscriptions (Mosquitto 2, EMQX, HiveMQ; amqtt has "
                                "none)" if topic.startswith("$share/") else ""))
                    self._client = client
                    self.connected.set()
                    backoff = self.config.mqtt_reconnect_s
                    log.info("connected to %s://%s:%s", "mqtts" if parts["tls"] else "mqtt",
                             parts["host"], parts["port"])
                    if self.on_connect:
                        self._spawn(self.on_connect())
                    queue = client._queue  # noqa: SLF001 - aiomqtt's queue of messages heard
                    async for message in client.messages:
                        # ... and every message already waiting behind it, without a
                        # task and a wait each (aiomqtt's iterator makes both): a burst
                        # is handled in one go, and its PUBACKs go out in one write
                        while True:
                            token = self.inbox.hold(message.mid, message.qos)
                            await self._dispatch(str(message.topic), message.payload, token, message.retain)
                            if queue.empty():
                                break
                            message = queue.get_nowait()
                        if len(self.inbox):
                            self._runs_due.set()  # nothing else waits: store (and ack) now
            except aiomqtt.MqttError as exc:
                log.warning("MQTT link lost or refused (%s); retrying in %.1fs", exc, backoff)
            finally:
                self._client = None
                self.connected.clear()
                self._new_link()
                self._lost_published()
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
        """Store the run reports heard, then ack them."""
        reports = self.inbox.take()
        if not reports:
            return
        try:
            await self.db.run(run_store.ingest, [(r.device, r.batch, r.received) for r in reports])
            self._heard_runs(reports)
        except DB_UNAVAILABLE:
            log.exception("could not store %d run reports; kept unacked, trying again", len(reports))
            self._ack(self.inbox.put_back(reports))
            return
        except Exception:  # one report the database refuses spoils the transaction: find it
            log.warning("a batch of %d run reports was refused; storing them one by one", len(reports))
            for i, r in enumerate(reports):
                try:
                    await self.db.run(run_store.ingest, [(r.device, r.batch, r.received)])
                    self._heard_runs([r])
                except DB_UNAVAILABLE:
                    log.exception("could not store run reports; kept unacked, trying again")
                    self._ack(self.inbox.put_back(reports[i:]))
                    return
                except Exception:
                    self.refused_runs += 1
                    log.exception("the database refused a run report of %s: dropped", r.device)
                self._ack(self.inbox.stored([r]))
            return
        self._ack(self.inbox.stored(reports))

    def _heard_runs(self, reports: list) -> None:
        if self.on_runs:
            self.on_runs([(r.device, r.batch) for r in reports])

    async def close(self) -> None:
        """Stop resends still running (what they had not sent is sent on the next start)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _new_link(self) -> None:
        self.inbox.new_link()
        self._heard_live.clear()

    def _ack(self, mids: list[int]) -> None:
        """Send the PUBACKs now due (on a link since lost there is nothing to send)."""
        if mids and self._client is not None:
            paho = _paho(self._client)
            for mid in mids:
                paho.ack(mid, 1)

    def _release(self, token: list | None) -> None:
        self._ack(self.inbox.handled(token))

    async def publish(self, device_id: str, messages: list[dict]) -> bool:
        """Send a command (and its chunks) and wait for the broker's PUBACK of
        the last; False when not connected, or the link is lost meanwhile.

        Straight to paho: aiomqtt's publish makes a task, an event and a
        timer a message and counts every call pending on each, which a
        100,000-device rollout felt. Messages on one link are acked in order
        (MQTT 3.1.1 section 4.6), so the last one's PUBACK stands for all."""
        client = self._client
        if client is None:
            return False
        paho = _paho(client)
        topic = self.topics.cmd(device_id)
        info = None
        for message in messages:
            info = paho.publish(topic, json.dumps(message, separators=(",", ":")), qos=1)
            if info.rc != 0:
                log.warning("could not send to %s: %s", device_id, paho_mqtt.error_string(info.rc))
                return False
        if info is None:
            return True
        done = asyncio.get_running_loop().create_future()
        self._published[info.mid] = done
        return await done

    def _on_published(self, mid: int) -> None:
        done = self._published.pop(mid, None)
        if done is not None and not done.done():
            done.set_result(True)

    def _lost_published(self) -> None:
        """The link is gone: what waits for a PUBACK is not known to be sent."""
        waiting, self._published = self._published, {}
        for done in waiting.values():
            if not done.done():
                done.set_result(False)

    async def _dispatch(self, topic: str, payload, token: list | None = None, retained: bool = False) -> None:
        """Handle one message; its ack is released here, or by store_runs for
        a run report (what is malformed is acked too: resending won't mend it)."""
        self.received += 1
        try:
            device_id, kind, _ = self.topics.parse(topic)
            body = json.loads(payload)
        except (TopicError, ValueError) as exc:
            log.debug("ignored message on %s: %s", topic, exc)
            self._release(token)
            return
        now = self.config.clock()
        try:
            if kind == "status":
                status = Status.model_validate(body)
                doc = stamp_clock(status.model_dump(mode="json"), now)
                self.live.setdefault(device_id, {})["status"] = doc
                came_online = await self.db.run(device_store.record_status, device_id, doc, now)
                if self.on_status:
                    self.on_status(device_id, doc, now)
                # A live "online" is a device that (re)connected: a broker
                # that restarted may have lost what we sent it (rule 5).
                back = status.state == "online" and not retained and device_id not in self._heard_live
                if back:
                    self._heard_live.add(device_id)
                if (came_online or back) and self.on_online:
                    # in the background: after a broker restart every device
                    # comes back at once, and the messages (and their acks)
                    # must not wait for each one's resend
                    self._spawn(self.on_online(device_id))
            elif kind == "ack":
                ack = Ack.model_validate(body)
                if self.on_ack:
                    self.on_ack(device_id, ack)
            elif kind == "runs":
                batch = RunsBatch.model_validate(body).model_dump(mode="json")
                nodes = sum(len(r["nodes"]) for r in batch["runs"])
                self._ack(self.inbox.add(Report(device_id, batch, now, token, digest(topic, payload), nodes)))
                token = None  # acked by store_runs once stored (or by add, as a copy)
                if self.inbox.nodes >= RUNS_FLUSH_NODES or len(self.inbox) >= RUNS_FLUSH_MESSAGES:
                    self._runs_due.set()
            elif kind == "health":
                health = stamp_clock(Health.model_validate(body).model_dump(mode="json"), now)
                self.live.setdefault(device_id, {})["health"] = health
                self._health[device_id] = (health, now)
                if self.on_health:
                    self.on_health(device_id, health, now)
        except ValidationError as exc:
            log.info("malformed %s from %s: %s", kind, device_id, exc.errors()[:1])
        except Exception:  # one bad message must not take the bridge down
            log.exception("failed to handle %s from %s", kind, device_id)
        finally:
            self._release(token)


def stamp_clock(doc: dict, now: float) -> dict:
    """A status or health report with its arrival time (`received_at`) and
    how far the device's clock is from ours (`clock_skew_s`, device minus
    cloud, to about a second: the device says whole seconds; None while its
    clock is not synced, or from a firmware that doesn't say)."""
    doc["received_at"] = now
    t = doc.get("time")
    doc["clock_skew_s"] = round(t - now, 1) if doc.get("synced") and isinstance(t, (int, float)) else None
    return doc


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a resend failed", exc_info=task.exception())


def _refused(granted) -> bool:
    """A SUBACK return code of failure (0x80 in MQTT 3.1.1, >= 0x80 in 5)."""
    value = getattr(granted, "value", granted)
    return isinstance(value, int) and value >= 0x80


def _paho(client: aiomqtt.Client):
    # aiomqtt (2.5) has no manual-ack API of its own; the paho client it
    # wraps has (manual_ack_set, ack), and aiomqtt runs paho's reads and
    # writes on this event loop, so calling it from here is safe.
    return client._client  # noqa: SLF001


def _manual_acks(client: aiomqtt.Client) -> None:
    """QoS 1 messages are acked by Bridge._release, not on arrival (rule 1)."""
    _paho(client).manual_ack_set(True)


def _on_published(client: aiomqtt.Client, callback) -> None:
    """Call `callback(mid)` on each PUBACK, beside aiomqtt's own handler."""
    paho = _paho(client)
    theirs = paho.on_publish

    def on_publish(c, userdata, mid, *rest):
        callback(mid)
        theirs(c, userdata, mid, *rest)
    paho.on_publish = on_publish

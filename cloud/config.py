"""Settings of one cloud instance: one dict-like dataclass of defaults that
`fleetflow serve` (flags, environment) and the tests override."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlparse

# on_provision(device_id, mqtt_password): called when a device is provisioned,
# so its MQTT credentials exist on the broker before it first connects
# (cloud.dynsec.Accounts.add for Mosquitto, tools.infra.broker.Broker.add_user for
# the tools' brokers). May be sync or async.
ProvisionHook = Callable[[str, str], "Awaitable[None] | None"]
# on_delete(device_id): called before a device is deleted, so its broker
# account goes and its live session is kicked (cloud.dynsec.Accounts.delete).
DeleteHook = Callable[[str], "Awaitable[None] | None"]

REPLICA_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass
class Config:
    db_url: str = "sqlite:///var/fleetflow.db"
    # None: no MQTT bridge (commands wait in the outbox until one connects).
    # mqtts:// is MQTT over TLS (verified against mqtt_ca_file); mqtt:// plain.
    mqtt_url: str | None = "mqtt://127.0.0.1:1883"
    # The CA that signed the broker's certificate (PEM): the bridge trusts
    # only it, and devices provisioned through the API get it with their
    # credentials (so `fleetflow flash --cloud` writes it into the board).
    mqtt_ca_file: str | None = None
    topic_prefix: str = "ff"
    secret: bytes = b""  # the server secret that seals device HMAC keys (cloud.secrets)
    on_provision: ProvisionHook | None = None
    on_delete: DeleteHook | None = None
    # Where devices reach the broker, told to them at provisioning; defaults
    # to the host and port of mqtt_url.
    device_mqtt_host: str | None = None
    device_mqtt_port: int | None = None
    engine_tick_s: float = 1.0  # how often the driver re-decides on timers
    resend_after_s: float = 30.0  # an unanswered command is sent again this often
    webhook_poll_s: float = 1.0  # how often due webhook deliveries are sent
    webhook_backoff_s: float = 2.0  # first retry delay; doubles per attempt
    webhook_max_attempts: int = 6  # then the delivery is kept as a dead letter
    mqtt_reconnect_s: float = 2.0  # first reconnect delay; doubles up to 30 s
    mqtt_client_id: str = "fleetflow-cloud"
    # Home Assistant MQTT discovery (cloud/homeassistant.py): each device and
    # what its flow exposes, as Home Assistant entities under ha_prefix/.
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"
    ha_grant: Callable[[], Awaitable[None]] | None = None  # gives the cloud's account the discovery topics
    # bcrypt's cost for users' passwords (cloud.sessions); each step doubles
    # the work (12: ~0.25 s of CPU a login). Only tests lower it.
    password_cost: int = 12
    # Replicas (docs/decisions.md, "Replicas"): None is one cloud process
    # alone. A name, unique among the replicas (the host's, say), makes this
    # process one of several `fleetflow serve` on one PostgreSQL and one
    # broker: MQTT client id `<mqtt_client_id>-<replica>` with a clean session,
    # shared subscriptions in mqtt_share_group, a lease per deployment,
    # execution and pipeline run (lease_ttl_s: how long a replica that stops
    # renewing keeps them), event streams fanned out with LISTEN/NOTIFY.
    replica: str | None = None
    mqtt_share_group: str = "fleetflow"
    lease_ttl_s: float = 10.0
    # whether deployments rehearse on simulated twins unless they say
    # (cloud/rehearsal.py); tests of other things turn it off
    rehearsal_default: bool = True
    clock: Callable[[], float] = field(default=time.time)

    def mqtt_parts(self) -> dict:
        """host, port, username, password of mqtt_url."""
        url = urlparse(self.mqtt_url or "mqtt://127.0.0.1:1883")
        tls = url.scheme == "mqtts"
        return {"host": url.hostname or "127.0.0.1", "port": url.port or (8883 if tls else 1883),
                "username": url.username, "password": url.password, "tls": tls}

    def mqtt_tls_context(self):
        """mqtts://: an ssl.SSLContext that trusts only mqtt_ca_file (the system's
        CAs without one) and checks the broker's host name; None for mqtt://."""
        if not self.mqtt_parts()["tls"]:
            return None
        import ssl

        return ssl.create_default_context(cafile=self.mqtt_ca_file)

    def device_ca(self) -> str | None:
        """The CA (PEM) devices verify the broker with; None when the broker is plain MQTT."""
        if not self.mqtt_ca_file or not self.mqtt_parts()["tls"]:
            return None
        with open(self.mqtt_ca_file) as f:
            return f.read()

    def check_replica(self) -> None:
        """ValueError, worded for the user, when `replica` cannot be used: a
        name that is not one short word, a database other than PostgreSQL
        (SQLite is one process's), a bad share group, a lease ttl shorter
        than three ticks (a lease is renewed every tick)."""
        from shared_schema.topics import check_share_group

        if not isinstance(self.replica, str) or not REPLICA_NAME.fullmatch(self.replica):
            raise ValueError(f"replica name {self.replica!r}: want 1 to 40 letters, digits, '-' or '_' "
                             "(it names the replica's MQTT client and its PostgreSQL channel)")
        scheme = urlparse(self.db_url).scheme if "://" in self.db_url else "sqlite"
        if scheme not in ("postgres", "postgresql"):
            raise ValueError(f"replica {self.replica!r} on {scheme}: replicas share one PostgreSQL "
                             "(postgresql://user:pw@host/db); SQLite is for one cloud process alone")
        check_share_group(self.mqtt_share_group)
        if not self.lease_ttl_s >= 3 * self.engine_tick_s:
            raise ValueError(f"lease ttl {self.lease_ttl_s!r}s: want at least three ticks "
                             f"({3 * self.engine_tick_s:g}s): a lease is renewed every tick")

    def bridge_client_id(self) -> str:
        """The bridge's MQTT client id: one per replica (two clients with one id
        take the session from each other)."""
        return self.mqtt_client_id if self.replica is None else f"{self.mqtt_client_id}-{self.replica}"

    def reserved_names(self) -> tuple[str | None, ...]:
        """The cloud's own broker names, which no device may take (cloud.dynsec.is_reserved)."""
        return self.mqtt_client_id, self.bridge_client_id(), self.mqtt_parts()["username"]

    def device_broker(self) -> tuple[str, int]:
        parts = self.mqtt_parts()
        return self.device_mqtt_host or parts["host"], self.device_mqtt_port or parts["port"]

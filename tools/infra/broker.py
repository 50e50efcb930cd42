"""An MQTT broker for tests, the simulator and the demo.

    with start_broker(workdir, users={"dev1": "pw"}) as broker:
        broker.host, broker.port, broker.kind, broker.url
        broker.add_user("dev2", "pw2")          # a device: ff/dev2/# only, client id dev2 only
        broker.add_user("cloud", "pw", admin=True)  # ff/# (names in ADMINS are admins too)
        broker.delete_user("dev2")              # gone, and its live session kicked
        broker.restart()                         # same port, same users
        broker.tls.ca, broker.ca_pem()           # MQTT over TLS (tools/infra/tls.py), the default

TLS: `start_broker(..., tls=True)` (the default) listens with TLS only, with
the CA and broker certificate of tools/infra/tls.py (made under workdir/tls, or
the TlsFiles given); `tls=False` is plain MQTT, for a lab LAN.

Mosquitto (the real broker, Debian package `mosquitto`) is preferred. Its
config is `mosquitto_config()`, the one README shows for production, and its
accounts live in the Dynamic Security plugin (cloud/dynsec.py has the rules):
`dynsec_init` bootstraps the plugin's JSON with an admin account,
`fleetflow-admin`, whose password is in `workdir/dynsec-admin.json` (0600);
`add_user`/`delete_user` publish commands on `$CONTROL/dynamic-security/v1`
as that admin and wait for the answer. Admin users (ADMINS, `admin=True`)
get ff/# and the $CONTROL topics, so the cloud logging in as `cloud` manages
device accounts itself (cloud.dynsec.Accounts). Mosquitto runs with umask
077, so the JSON it re-saves and its persistence file stay 0600.

When mosquitto is not installed, amqtt runs in-process on its own thread and
event loop with the same rules, enforced by the plugins below and by
`_GuardedAmqtt`, which authenticates a CONNECT before amqtt touches any
session under that client id (amqtt 0.12 would otherwise delete or take over
the session of whatever client id an unauthenticated CONNECT names). A
warning says that it ran.

Ports: a free port is picked, then the broker binds it, and another process
may take it in between. Start-up therefore waits for the broker's own word
that it listens (Mosquitto's "running" log line, amqtt's started server; a
connection alone could reach whoever took the port) and, when the bind
failed, tries again on a fresh port, up to START_ATTEMPTS times. Once a
broker has run, or when the caller chose the port, the port is fixed
(devices know it): `restart()` retries the same port for PINNED_RETRY_S.
Mosquitto is started with tools.infra.proc.owned_popen, so it dies with its owner.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cloud import dynsec
from shared_schema.envelope import MAX_PACKET_BYTES
from tools.infra import tls as tls_mod
from tools.infra.proc import owned_popen

log = logging.getLogger("fleetflow.broker")

ADMINS = frozenset({"cloud", "admin"})
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_ATTEMPTS = 5      # fresh ports tried when the one picked was taken meanwhile
PINNED_RETRY_S = 10.0   # how long a restart waits for its own port to come free
# amqtt's own shutdown sometimes hangs dropping a session; past this the
# listeners and the loop are closed regardless.
AMQTT_SHUTDOWN_S = 3.0
# Mosquitto's per-client limits. Its default queue (1,000 QoS 1 messages above
# those in flight) drops acks when a 10,000-device batch answers the one
# cloud client at once, or while the cloud's persistent session is offline;
# the byte cap bounds what one client's queue can hold (100,000 acks of
# ~300 B fit in 32 MB).
MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 64 * 1024 * 1024
MAX_INFLIGHT_MESSAGES = 100
# Mosquitto writes its in-memory state (queued QoS 1 messages, sessions,
# retained status) to disk this often: a kill -9 loses at most this window.
AUTOSAVE_INTERVAL_S = 5
ADMIN_USER = "fleetflow-admin"  # the tools' dynsec admin (a reserved id: no device can take it)
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"  # Debian's, amd64
DYNSEC_FILE = "dynamic-security.json"


def dynsec_plugin_path() -> str:
    """Debian's plugin for this machine's architecture."""
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
    return found[0] if found else DYNSEC_PLUGIN


TLS_DIR = "/etc/mosquitto/certs"  # production: ca.pem, broker.pem, broker.key (fleetflow broker init)


def mosquitto_config(*, port: int = 8883, host: str = "0.0.0.0", data_dir: str = "/var/lib/mosquitto",
                     plugin: str = DYNSEC_PLUGIN, log_file: str = "/var/log/mosquitto/mosquitto.log",
                     run_as_root: bool = False, tls_dir: str | None = TLS_DIR) -> str:
    """The whole Mosquitto config. The defaults give the production one that
    README shows (a test compares them); the tools' broker passes its own
    port and folders. tls_dir (ca.pem, broker.pem, broker.key: tools/infra/tls.py)
    makes the listener TLS; None is plain MQTT (--plain-mqtt)."""
    tls = tls_mod.mosquitto_lines(tls_mod.tls_files(tls_dir)) if tls_dir else []
    return "\n".join([
        "# fleetflow's Mosquitto (tools/infra/broker.py mosquitto_config; docs/decisions.md)",
        "per_listener_settings false",
        f"listener {port} {host}",
        *tls,
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {data_dir}/{DYNSEC_FILE}",
        "persistence true",
        f"persistence_location {data_dir}/",
        f"autosave_interval {AUTOSAVE_INTERVAL_S}",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "max_keepalive 300",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"log_dest file {log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        # As root mosquitto would drop to the `mosquitto` user, which can't
        # read a test's private workdir: stay root for a throwaway broker.
        *(["user root"] if run_as_root else []),
        "",
    ])


def dynsec_init(path, admin_user: str, admin_password: str, prefix: str = "ff") -> None:
    """Bootstrap the plugin's JSON before Mosquitto first loads it:
    `mosquitto_ctrl dynsec init` makes the admin client with the `admin` role
    ($CONTROL topics); we add the `fleetflow-cloud` role (readwrite
    <prefix>/#) and give it to the admin too. The file is 0600."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists: the broker's accounts are in it; remove it to start over")
    proc = subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(path), admin_user, admin_password],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not path.exists():
        raise RuntimeError(f"mosquitto_ctrl dynsec init failed: {(proc.stderr or proc.stdout).strip()}")
    path.chmod(0o600)
    doc = json.loads(path.read_text())
    doc["roles"].append({"rolename": dynsec.CLOUD_ROLE, "acls": dynsec.cloud_role(prefix)[0]["acls"]})
    for client in doc["clients"]:
        if client["username"] == admin_user:
            client["roles"].append({"rolename": dynsec.CLOUD_ROLE})
    path.write_text(json.dumps(doc, indent=1))


def dynsec_control(host: str, port: int, username: str, password: str, commands: list[dict],
                   timeout_s: float = dynsec.ANSWER_TIMEOUT_S, ca_file=None) -> None:
    """cloud.dynsec.Accounts.run for the tools (paho, synchronous)."""
    import paho.mqtt.client as mqtt

    payload, tag = dynsec.request(commands)
    answer: list = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{dynsec.RESERVED_PREFIX}accounts-{tag}")
    client.username_pw_set(username, password)
    if ca_file:  # MQTT over TLS: trust the broker's CA only
        client.tls_set_context(tls_mod.client_context(ca_file))

    def on_connect(c, userdata, flags, reason, props=None):
        if reason.is_failure:
            answer.append(dynsec.DynsecError(f"{username} refused by the broker: {reason}"))
            done.set()
        else:
            c.subscribe(dynsec.RESPONSE_TOPIC, qos=1)

    def on_message(c, userdata, msg):
        responses = dynsec.answer_for(msg.payload, tag)
        if responses is not None:
            answer.append(responses)
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda c, *a: c.publish(dynsec.CONTROL_TOPIC, payload, qos=1)
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
        client.loop_start()
        if not done.wait(timeout_s):
            raise dynsec.DynsecError(f"no answer on {dynsec.RESPONSE_TOPIC} within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    if isinstance(answer[0], Exception):
        raise answer[0]
    dynsec.check(commands, answer[0])


class PortTaken(RuntimeError):
    """The broker could not bind its port: another process has it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for p in MOSQUITTO_PATHS:
        if os.access(p, os.X_OK):
            return p
    return None


def _wait_port(host: str, port: int, timeout_s: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("broker exited during start-up")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on {host}:{port} within {timeout_s}s")


class Broker:
    """Common surface of both brokers."""

    kind = "?"
    host = "127.0.0.1"

    def __init__(self, workdir: Path, users: dict[str, str] | None, port: int | None, tls=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = _tls_files(self.workdir, tls)
        self.users: dict[str, str] = dict(users or {})
        self.admins: set[str] = {u for u in self.users if u in ADMINS}
        # A port the caller chose, or one devices already use, is kept.
        self.port_pinned = bool(port)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def ca_pem(self) -> str | None:
        """The CA a client verifies this broker with (None: plain MQTT)."""
        return self.tls.ca_pem() if self.tls else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def start(self) -> None:
        """Start and wait until it listens; a taken port is retried (see the module doc)."""
        deadline = time.monotonic() + PINNED_RETRY_S
        attempt = 0
        while True:
            attempt += 1
            try:
                self._start_once()
            except PortTaken as exc:
                if self.port_pinned:
                    if time.monotonic() >= deadline:
                        raise PortTaken(f"{self.kind}: port {self.port} stayed taken for {PINNED_RETRY_S:g}s: {exc}")
                    time.sleep(0.2)
                    continue
                if attempt >= START_ATTEMPTS:
                    raise PortTaken(f"{self.kind}: {attempt} ports were taken before it could bind one: {exc}")
                old, self.port = self.port, free_port()
                log.info("%s: port %d was taken, trying %d", self.kind, old, self.port)
                self._port_changed()
                continue
            self.port_pinned = True
            return

    def _start_once(self) -> None:
        raise NotImplementedError

    def _port_changed(self) -> None:
        """Called after self.port changed before a (re)try."""

    def _check_name(self, name: str, admin: bool) -> bool:
        """Whether `name` is an admin; a device may not take a reserved id."""
        admin = admin or name in ADMINS
        if not admin and dynsec.is_reserved(name):
            raise ValueError(f"{name!r} is reserved for the cloud's and the broker's own accounts")
        return admin

    def _acl_allows(self, user: str | None, topic: str) -> bool:
        if user in self.admins:  # like Mosquitto's cloud role: ff/# and Home Assistant's discovery topics
            return topic.startswith(("ff/", "homeassistant/")) or topic in ("ff/#", "homeassistant/#")
        if not user:
            return False
        own = f"ff/{user}/"
        return topic.startswith(own) or topic == f"ff/{user}/#"


class MosquittoBroker(Broker):
    kind = "mosquitto"

    def __init__(self, workdir, users=None, port=None, exe=None, tls=None):
        super().__init__(workdir, users, port, tls)
        self.exe = exe or mosquitto_path()
        self.proc: subprocess.Popen | None = None
        self.conf = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.dynsec_file = self.workdir / DYNSEC_FILE
        admin_file = self.workdir / "dynsec-admin.json"
        if self.dynsec_file.exists() and admin_file.exists():  # a broker that ran here keeps its accounts
            self.admin_password = json.loads(admin_file.read_text())["password"]
        else:
            self.dynsec_file.unlink(missing_ok=True)
            self.admin_password = secrets.token_urlsafe(18)
            dynsec_init(self.dynsec_file, ADMIN_USER, self.admin_password)
            admin_file.touch(0o600)
            admin_file.write_text(json.dumps({"username": ADMIN_USER, "password": self.admin_password}))
        # Accounts are changed over $CONTROL, so they wait until it runs.
        self._pending: list[dict] = []
        for name, pw in self.users.items():
            self._pending += self._account(name, pw, name in self.admins)
        self._write_conf()

    def _account(self, name: str, password: str, admin: bool) -> list[dict]:
        return dynsec.add_admin(name, password) if admin else dynsec.add_device(name, password)

    def _control(self, commands: list[dict]) -> None:
        # One $CONTROL message must fit the broker's max_packet_size (a larger
        # one is dropped unanswered): a fleet's accounts (~1 KB each) go in batches.
        batch: list[dict] = []
        size = 0
        for cmd in commands:
            n = len(json.dumps(cmd)) + 64  # + its correlationData and separators
            if batch and size + n > MAX_PACKET_BYTES // 2:
                dynsec_control(self.host, self.port, ADMIN_USER, self.admin_password, batch,
                               ca_file=self.tls.ca if self.tls else None)
                batch, size = [], 0
            batch.append(cmd)
            size += n
        if batch:
            dynsec_control(self.host, self.port, ADMIN_USER, self.admin_password, batch,
                               ca_file=self.tls.ca if self.tls else None)

    def _write_conf(self) -> None:
        self.conf.write_text(mosquitto_config(port=self.port, host=self.host, data_dir=str(self.workdir),
                                              plugin=dynsec_plugin_path(), log_file=str(self.log_path),
                                              run_as_root=os.geteuid() == 0,
                                              tls_dir=str(self.tls.dir) if self.tls else None))

    def _port_changed(self) -> None:
        self._write_conf()

    def _start_once(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = owned_popen([self.exe, "-c", str(self.conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, umask=0o077)
        # Listening is what its log says once the listener is bound ("running");
        # a bind failure ends the process with "Address already in use".
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            said = self._log_since(log_from)
            if " running" in said and self.proc.poll() is None:
                _wait_port(self.host, self.port, 5, alive=lambda: self.proc.poll() is None)
                if self._pending:
                    self._control(self._pending)
                    self._pending = []
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        exited = self.proc.poll() is not None
        err = self.proc.stderr.read().decode(errors="replace") if exited else "did not start within 10 s"
        said = self._log_since(log_from)
        self.stop()
        if "address already in use" in (said + err).lower():
            raise PortTaken(f"mosquitto: port {self.port}: address already in use")
        raise RuntimeError(f"mosquitto failed to start: {err.strip()} {said.strip()} (log {self.log_path})")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        admin = self._check_name(name, admin)
        self._apply(self._account(name, password, admin))
        self.users[name] = password
        if admin:
            self.admins.add(name)

    def delete_user(self, name: str) -> None:
        """Delete the account; Mosquitto disconnects its live session."""
        self._apply(dynsec.delete_device(name))
        self.users.pop(name, None)
        self.admins.discard(name)

    def _apply(self, commands: list[dict]) -> None:
        if self.proc and self.proc.poll() is None:
            self._control(commands)
        else:
            self._pending += commands

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


# -- amqtt fallback: the same accounts and rules, enforced by plugins --

_AMQTT_BROKERS: dict[str, "AmqttBroker"] = {}


def _amqtt_plugins():
    from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

    class FleetflowAuth(BaseAuthPlugin):
        """Username/password from the AmqttBroker's user table; a device only
        under its own client id (cloud/dynsec.py rule 1)."""

        @dataclass
        class Config:
            broker_key: str = ""

        async def authenticate(self, *, session) -> bool:
            b = _AMQTT_BROKERS.get(self.config.broker_key)
            if b is None or not session.username:
                return False
            if b.users.get(session.username) != session.password:
                return False
            return session.username in b.admins or session.client_id == session.username

    class FleetflowAcl(BaseTopicPlugin):
        """Devices may use only ff/<username>/...; admins all of ff/."""

        @dataclass
        class Config:
            broker_key: str = ""

        async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool:
            b = _AMQTT_BROKERS.get(self.config.broker_key)
            user = session.username if session else None
            return bool(b and topic and b._acl_allows(user, topic))

    return FleetflowAuth, FleetflowAcl


class AmqttBroker(Broker):
    kind = "amqtt"

    def __init__(self, workdir, users=None, port=None, tls=None, max_packet_size: int | None = MAX_PACKET_BYTES):
        super().__init__(workdir, users, port, tls)
        # None: no packet limit, like a broker someone set up without one
        # (the device's own defence is tested against it).
        self.max_packet_size = max_packet_size
        self._key = f"{id(self)}"
        _AMQTT_BROKERS[self._key] = self
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None

    def _config(self) -> dict:
        auth, acl = _amqtt_plugins()
        mod = sys.modules[__name__]
        setattr(mod, "_FleetflowAuth", auth)
        setattr(mod, "_FleetflowAcl", acl)
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0,
                                      **(tls_mod.amqtt_listener(self.tls) if self.tls else {})}},
            "plugins": {
                f"{__name__}._FleetflowAuth": {"broker_key": self._key},
                f"{__name__}._FleetflowAcl": {"broker_key": self._key},
            },
        }

    def _start_once(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        ready = threading.Event()
        errors: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = _guarded_amqtt(self.max_packet_size)(self._config(), loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                _close_loop(loop)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            _close_loop(loop)

        self._thread = threading.Thread(target=run, name=f"amqtt:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors:
            self._thread.join(5)
            self._thread = self._loop = self._broker = None
            if _address_in_use(errors[0]):
                raise PortTaken(f"amqtt: port {self.port}: {errors[0]}")
            raise RuntimeError(f"amqtt failed to start: {errors[0]!r}")
        _wait_port(self.host, self.port, 10)

    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        admin = self._check_name(name, admin)
        self.users[name] = password
        if admin:
            self.admins.add(name)

    def delete_user(self, name: str) -> None:
        """Forget the user and end its live session, as Mosquitto's deleteClient does."""
        self.users.pop(name, None)
        self.admins.discard(name)
        loop = self._loop
        if loop and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._kick(name), loop).result(5)

    async def _kick(self, name: str) -> None:
        for client_id, (session, handler) in list(self._broker.sessions.items()):
            if session.username == name:
                # Close the socket itself: amqtt's disconnect waiter does not
                # exist yet in the moment between its CONNACK and its message
                # loop, so only telling the handler could miss a fresh session.
                if handler is not None and handler.writer is not None:
                    await handler.writer.close()
                if handler is not None:
                    await handler.handle_connection_closed()
                await self._broker._delete_session(client_id)

    async def _close_listeners(self, wait: bool = True) -> None:
        """Accept no new connection; wait: also until each listener is closed."""
        for server in list(getattr(self._broker, "_servers", {}).values()):
            instance = getattr(server, "instance", None)
            if instance is not None:
                instance.close()
                if wait:
                    await asyncio.wait_for(instance.wait_closed(), 2)

    def stop(self) -> None:
        if not self._thread:
            return
        loop = self._loop
        if loop and loop.is_running():
            # amqtt's shutdown ends the sessions first and closes its listeners
            # last: clients would reconnect to the dying broker in between
            # (and be cut again). No new connection from here on.
            asyncio.run_coroutine_threadsafe(self._close_listeners(wait=False), loop).result(5)
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                fut.result(AMQTT_SHUTDOWN_S)
            except Exception as exc:  # shutting down anyway
                log.debug("amqtt shutdown: %r", exc)
            # amqtt's shutdown can give up (a TimeoutError while it drops a
            # session) before it closes its listeners; a restart needs the port.
            fut = asyncio.run_coroutine_threadsafe(self._close_listeners(), loop)
            try:
                fut.result(5)
            except Exception as exc:  # the loop goes anyway
                log.debug("amqtt listeners: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = self._loop = self._broker = None


def _guarded_amqtt(max_packet_size: int | None = MAX_PACKET_BYTES):
    """amqtt's Broker, authenticating a CONNECT before any session is touched
    and refusing a packet over max_packet_size (None: any size).

    amqtt 0.12.1 handles the session a CONNECT names (deletes it on a clean
    session, takes it over otherwise) before it asks the auth plugins, so a
    refused client could still throw the cloud or a device off. This is its
    `_initialize_client_session` with the authentication first."""
    from amqtt.broker import Broker as Amqtt
    from amqtt.errors import AMQTTError, MQTTError, NoDataError
    from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
    from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
    from amqtt.utils import gen_client_id

    class GuardedAmqtt(Amqtt):
        async def _client_connected(self, listener_name, reader, writer):
            # every packet of the connection, its CONNECT first, read through the size check
            if max_packet_size:
                reader = SizedReader(reader, max_packet_size)
            await super()._client_connected(listener_name, reader, writer)

        async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
            try:
                handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
            except MQTTError:
                await writer.close()
                raise
            except NoDataError as exc:
                raise AMQTTError(exc) from exc
            if not await self._authenticate(session, None):
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
                await writer.close()
                raise MQTTError(f"not authorised: {session.username!r} as client id {session.client_id!r}")
            if session.clean_session:
                if session.client_id:
                    await self._delete_session(session.client_id)
                else:
                    session.client_id = gen_client_id()
                session.parent = 0
            elif session.client_id in self._sessions:
                old, _ = self._sessions[session.client_id]
                for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive", "username",
                             "password"):
                    setattr(old, name, getattr(session, name))
                session = old
                session.parent = 1
            else:
                session.parent = 0
            delay = self.config.get("timeout-disconnect-delay", 0)
            if session.keep_alive > 0 and isinstance(delay, int):
                session.keep_alive += delay
            return handler, session

    return GuardedAmqtt


class SizedReader:
    """amqtt's reader with Mosquitto's `max_packet_size`: a packet whose
    fixed header announces more than `limit` bytes in all ends the
    connection, as Mosquitto does, before amqtt reads (and allocates) its
    body. It follows the MQTT framing of the bytes passing through (a fixed
    header byte, 1-4 bytes of remaining length, then that many bytes), so it
    doesn't depend on how amqtt splits its reads."""

    def __init__(self, reader, limit: int):
        self.reader = reader
        self.limit = limit
        self.refused = False
        self._state = "type"  # "type", "length", or "body"
        self._length = self._shift = self._header = 0

    async def read(self, n: int = -1) -> bytes:
        if self.refused:
            raise ConnectionResetError("packet over max_packet_size")
        data = await self.reader.read(n)
        self._frame(data)
        return data

    def feed_eof(self) -> None:
        self.reader.feed_eof()

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def _frame(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._state == "body":
                step = min(self._length, len(data) - i)
                self._length -= step
                i += step
                if self._length == 0:
                    self._state = "type"
                continue
            byte = data[i]
            i += 1
            if self._state == "type":
                self._state, self._length, self._shift, self._header = "length", 0, 0, 1
                continue
            self._length += (byte & 0x7F) << self._shift
            self._shift += 7
            self._header += 1
            if byte & 0x80:
                continue
            if self._header + self._length > self.limit:
                self.refused = True
                log.warning("amqtt: a client sent a %d-byte packet (max_packet_size %d): disconnected",
                            self._header + self._length, self.limit)
                raise ConnectionResetError("packet over max_packet_size")  # amqtt: no more data
            self._state = "body" if self._length else "type"


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close amqtt's loop with no task left pending: a task collected after the
    loop closed would raise "Event loop is closed" from its finally blocks."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception as exc:  # closing anyway
        log.debug("amqtt loop clean-up: %r", exc)
    finally:
        loop.close()


def _address_in_use(exc: BaseException | None) -> bool:
    """amqtt wraps the listener's OSError (EADDRINUSE) in its own errors."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return True
        if "address already in use" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _tls_files(workdir: Path, tls):
    """tls=True: the CA and certificate under workdir/tls; a TlsFiles: those; falsy: plain."""
    if tls is True:
        return tls_mod.ensure_tls(workdir / "tls")
    return tls or None


def start_broker(workdir, users: dict[str, str] | None = None, prefer: str = "mosquitto",
                 port: int | None = None, tls=True) -> Broker:
    """Start a broker (Mosquitto when installed, else amqtt) and return it running;
    MQTT over TLS unless tls=False (see the module doc)."""
    if prefer not in ("mosquitto", "amqtt"):
        raise ValueError(f"prefer must be 'mosquitto' or 'amqtt', not {prefer!r}")
    exe = mosquitto_path() if prefer == "mosquitto" else None
    if exe:
        broker: Broker = MosquittoBroker(workdir, users, port, exe, tls=tls)
    else:
        if prefer == "mosquitto":
            msg = ("WARNING: mosquitto is not installed: running on amqtt in-process instead "
                   "(install Debian's `mosquitto` for the real broker)")
            log.warning(msg)
            print(msg, file=sys.stderr)
        broker = AmqttBroker(workdir, users, port, tls=tls)
    broker.start()
    return broker

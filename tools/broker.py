"""An MQTT broker for tests, the simulator and the demo.

    with start_broker(workdir, users={"dev1": "pw"}) as broker:
        broker.host, broker.port, broker.kind, broker.url
        broker.add_user("dev2", "pw2")          # a device: ff/dev2/# only
        broker.add_user("cloud", "pw", admin=True)  # ff/# (names in ADMINS are admins too)
        broker.restart()                         # same port, same users

Mosquitto (the real broker, Debian package `mosquitto`) is preferred: it runs
on a free port with a password file and an ACL (`pattern readwrite ff/%u/#`
for devices, `topic readwrite ff/#` for the cloud/admin users), with
persistence in `workdir` so a restart keeps retained messages and sessions.
`add_user` runs mosquitto_passwd and reloads with SIGHUP.

When mosquitto is not installed, amqtt runs in-process on its own thread and
event loop, with the same users and the same per-device topic rule enforced
by two small amqtt plugins below. A warning says that it did.

Ports: a free port is picked, then the broker binds it, and another process
may take it in between. Start-up therefore waits for the broker's own word
that it listens (Mosquitto's "running" log line, amqtt's started server; a
connection alone could reach whoever took the port) and, when the bind
failed, tries again on a fresh port, up to START_ATTEMPTS times. Once a
broker has run, or when the caller chose the port, the port is fixed
(devices know it): `restart()` retries the same port for PINNED_RETRY_S.
Mosquitto is started with tools.proc.owned_popen, so it dies with its owner.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc import owned_popen

log = logging.getLogger("fleetflow.broker")

ADMINS = frozenset({"cloud", "admin"})
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_ATTEMPTS = 5      # fresh ports tried when the one picked was taken meanwhile
PINNED_RETRY_S = 10.0   # how long a restart waits for its own port to come free
# Mosquitto's per-client limits. Its default queue (1,000 QoS 1 messages above
# those in flight) drops acks when a 10,000-device batch answers the one
# cloud client at once, or while the cloud's persistent session is offline.
# amqtt's own shutdown sometimes hangs dropping a session; past this the
# listeners and the loop are closed regardless.
AMQTT_SHUTDOWN_S = 3.0
MAX_QUEUED_MESSAGES = 100_000
MAX_INFLIGHT_MESSAGES = 100


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

    def __init__(self, workdir: Path, users: dict[str, str] | None, port: int | None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users: dict[str, str] = dict(users or {})
        self.admins: set[str] = {u for u in self.users if u in ADMINS}
        # A port the caller chose, or one devices already use, is kept.
        self.port_pinned = bool(port)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

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

    def _acl_allows(self, user: str | None, topic: str) -> bool:
        if user in self.admins:
            return topic.startswith("ff/") or topic == "ff/#"
        if not user:
            return False
        own = f"ff/{user}/"
        return topic.startswith(own) or topic == f"ff/{user}/#"


class MosquittoBroker(Broker):
    kind = "mosquitto"

    def __init__(self, workdir, users=None, port=None, exe=None):
        super().__init__(workdir, users, port)
        self.exe = exe or mosquitto_path()
        self.proc: subprocess.Popen | None = None
        self.passwd = self.workdir / "passwd"
        self.acl = self.workdir / "acl"
        self.conf = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.passwd.write_text("")
        for name, pw in self.users.items():
            self._passwd(name, pw)
        self._write_acl()
        self._write_conf()

    def _passwd(self, name: str, password: str) -> None:
        subprocess.run(["mosquitto_passwd", "-b", str(self.passwd), name, password],
                       check=True, capture_output=True)

    def _write_acl(self) -> None:
        lines = ["# devices: their own subtree only", "pattern readwrite ff/%u/#", ""]
        for name in sorted(self.admins):
            lines += [f"user {name}", "topic readwrite ff/#", "topic read $SYS/#", ""]
        self.acl.write_text("\n".join(lines))

    def _write_conf(self) -> None:
        root = os.geteuid() == 0
        self.conf.write_text("\n".join([
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            f"password_file {self.passwd}",
            f"acl_file {self.acl}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_keepalive 300",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
            # As root mosquitto would drop to the `mosquitto` user, which can't
            # read a test's private workdir: stay root for this throwaway broker.
            *(["user root"] if root else []),
            "",
        ]))

    def _port_changed(self) -> None:
        self._write_conf()

    def _start_once(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = owned_popen([self.exe, "-c", str(self.conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        # Listening is what its log says once the listener is bound ("running");
        # a bind failure ends the process with "Address already in use".
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            said = self._log_since(log_from)
            if " running" in said and self.proc.poll() is None:
                _wait_port(self.host, self.port, 5, alive=lambda: self.proc.poll() is None)
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
        self.users[name] = password
        self._passwd(name, password)
        if admin or name in ADMINS:
            self.admins.add(name)
            self._write_acl()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)  # reloads password file and ACL
            time.sleep(0.1)

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


# -- amqtt fallback: the same users and topic rule, enforced by plugins --

_AMQTT_BROKERS: dict[str, "AmqttBroker"] = {}


def _amqtt_plugins():
    from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

    class FleetflowAuth(BaseAuthPlugin):
        """Username/password from the AmqttBroker's user table."""

        @dataclass
        class Config:
            broker_key: str = ""

        async def authenticate(self, *, session) -> bool:
            b = _AMQTT_BROKERS.get(self.config.broker_key)
            if b is None or not session.username:
                return False
            return b.users.get(session.username) == session.password

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

    def __init__(self, workdir, users=None, port=None):
        super().__init__(workdir, users, port)
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
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}},
            "plugins": {
                f"{__name__}._FleetflowAuth": {"broker_key": self._key},
                f"{__name__}._FleetflowAcl": {"broker_key": self._key},
            },
        }

    def _start_once(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        from amqtt.broker import Broker as _Amqtt

        ready = threading.Event()
        errors: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = _Amqtt(self._config(), loop=loop)
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
        self.users[name] = password
        if admin or name in ADMINS:
            self.admins.add(name)

    async def _close_listeners(self) -> None:
        for server in list(getattr(self._broker, "_servers", {}).values()):
            instance = getattr(server, "instance", None)
            if instance is not None:
                instance.close()
                await asyncio.wait_for(instance.wait_closed(), 2)

    def stop(self) -> None:
        if not self._thread:
            return
        loop = self._loop
        if loop and loop.is_running():
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


def start_broker(workdir, users: dict[str, str] | None = None, prefer: str = "mosquitto",
                 port: int | None = None) -> Broker:
    """Start a broker (Mosquitto when installed, else amqtt) and return it running."""
    if prefer not in ("mosquitto", "amqtt"):
        raise ValueError(f"prefer must be 'mosquitto' or 'amqtt', not {prefer!r}")
    exe = mosquitto_path() if prefer == "mosquitto" else None
    if exe:
        broker: Broker = MosquittoBroker(workdir, users, port, exe)
    else:
        if prefer == "mosquitto":
            msg = ("WARNING: mosquitto is not installed: running on amqtt in-process instead "
                   "(install Debian's `mosquitto` for the real broker)")
            log.warning(msg)
            print(msg, file=sys.stderr)
        broker = AmqttBroker(workdir, users, port)
    broker.start()
    return broker

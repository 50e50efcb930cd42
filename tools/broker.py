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
"""

from __future__ import annotations

import asyncio
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

log = logging.getLogger("fleetflow.broker")

ADMINS = frozenset({"cloud", "admin"})
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


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
            # As root mosquitto would drop to the `mosquitto` user, which can't
            # read a test's private workdir: stay root for this throwaway broker.
            *(["user root"] if root else []),
            "",
        ]))

    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        try:
            _wait_port(self.host, self.port, 10, alive=lambda: self.proc.poll() is None)
        except RuntimeError:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"mosquitto failed to start: {err} (log {self.log_path})")

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

    def start(self) -> None:
        # After a restart the old listening socket may take a moment to go:
        # retry the bind for a few seconds.
        for attempt in range(30):
            try:
                return self._start_once()
            except OSError as exc:
                if exc.errno != 98 or attempt == 29:
                    raise
                time.sleep(0.2)

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
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"amqtt:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors:
            self._thread.join(5)
            self._thread = None
            if "address already in use" in str(errors[0]):
                raise OSError(98, str(errors[0]))
            raise RuntimeError(f"amqtt failed to start: {errors[0]!r}")
        _wait_port(self.host, self.port, 10)

    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        self.users[name] = password
        if admin or name in ADMINS:
            self.admins.add(name)

    def stop(self) -> None:
        if not self._thread:
            return
        loop = self._loop
        if loop and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                fut.result(10)
            except Exception as exc:  # shutting down anyway
                log.debug("amqtt shutdown: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None
        self._broker = None


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

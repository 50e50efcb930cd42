"""A whole local fleetflow: MQTT broker + cloud on SQLite, wired as a user would.

    with Stack(workdir) as stack:
        stack.api            # tools.cli.client.Client with an admin key
        stack.api_url        # http://127.0.0.1:PORT/api/v1
        stack.provision(device_id) -> credentials

The broker is tools.infra.broker (Mosquitto when installed, else amqtt in-process),
MQTT over TLS with the CA and certificate of tools/infra/tls.py in `workdir/tls`
(plain MQTT only with plain_mqtt=True, for a lab LAN); the cloud's bridge
verifies it with that CA and hands the CA to every device it provisions.
The cloud is the real aiohttp app (`cloud.app.init_app`) served on a free
port from a thread of this process, with its database, secret and log in
`workdir`; it logs in to the broker as the `cloud` admin user. Its
`on_provision` hook gives every device provisioned through the API (by
`fleetflow flash --cloud`, `fleetflow devices provision`, the simulator) its
broker account before the API answers, and `on_delete` deletes it (and kicks
the device) before a device is deleted: on Mosquitto the cloud does it
itself over $CONTROL/dynamic-security/v1 (cloud.dynsec.Accounts, as
`fleetflow serve` does), on amqtt through the in-process broker's table.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from pathlib import Path

from tools.cli import client as client_mod
from tools.infra.broker import start_broker
from tools.infra.tls import ensure_tls


LOGGERS = ("fleetflow", "aiohttp.access", "aiohttp.server", "amqtt", "transitions")


def account_hooks(broker, config):
    """(on_provision, on_delete) for a tools.infra.broker broker and a cloud config."""
    if broker.kind == "mosquitto":
        from cloud.dynsec import Accounts

        accounts = Accounts.from_config(config)
        return accounts.add, accounts.delete

    async def add(device_id: str, password: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, broker.add_user, device_id, password)

    async def delete(device_id: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, broker.delete_user, device_id)

    return add, delete


class StackError(Exception):
    """The broker or the cloud did not come up."""


class Stack:
    def __init__(self, workdir, *, prefer_broker: str = "mosquitto", tick_s: float = 0.2, host: str = "127.0.0.1",
                 port: int = 0, log=print, users: dict[str, str] | None = None, plain_mqtt: bool = False,
                 ha_discovery: bool = False):
        self.ha_discovery = ha_discovery  # Home Assistant MQTT discovery (cloud/homeassistant.py)
        self.workdir = Path(workdir)
        self.users = dict(users or {})  # broker accounts besides the cloud's (devices provisioned before)
        self.plain_mqtt = plain_mqtt
        self.tls = None  # tools.infra.tls.TlsFiles once started, unless plain_mqtt
        self.prefer_broker = prefer_broker
        self.tick_s = tick_s
        self.host, self.port = host, port
        self.log = log
        self.broker = None
        self.api: client_mod.Client | None = None
        self.db_url = f"sqlite:///{self.workdir / 'cloud.db'}"
        self.cloud_log = self.workdir / "cloud.log"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner = None
        self._log_handler: logging.Handler | None = None

    @property
    def api_url(self) -> str:
        return self.api.api_url() if self.api else ""

    def start(self) -> "Stack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cloud_pw = secrets.token_urlsafe(16)
        # The cloud's and the in-process broker's logs go to a file, not into
        # the narration on the terminal.
        self._log_handler = logging.FileHandler(self.cloud_log)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self._log_handler)
            logging.getLogger(name).setLevel(logging.INFO)
        try:
            if not self.plain_mqtt:
                self.tls = ensure_tls(self.workdir / "tls")
            self.broker = start_broker(self.workdir / "broker", users={**self.users, "cloud": cloud_pw},
                                       prefer=self.prefer_broker, tls=self.tls or False)
            self.log(f"broker: {self.broker.kind} on {self.broker.url}"
                     + (f" (TLS, CA {self.tls.ca})" if self.tls else " (plain MQTT: --plain-mqtt)"))
            scheme = "mqtts" if self.tls else "mqtt"
            self._start_cloud(f"{scheme}://cloud:{cloud_pw}@{self.broker.host}:{self.broker.port}")
            self.log(f"cloud: {self.api_url} (SQLite {self.workdir / 'cloud.db'}, log {self.cloud_log})")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_cloud(self, mqtt_url: str) -> None:
        from aiohttp import web

        from cloud import admin
        from cloud.app import init_app
        from cloud.config import Config
        from cloud.secrets import load_server_secret

        config = Config(db_url=self.db_url, mqtt_url=mqtt_url, mqtt_ca_file=str(self.tls.ca) if self.tls else None,
                        secret=load_server_secret(str(self.workdir / "cloud.secret")),
                        engine_tick_s=self.tick_s, mqtt_reconnect_s=0.5, ha_discovery=self.ha_discovery)
        config.on_provision, config.on_delete = account_hooks(self.broker, config)
        with admin.open_database(self.db_url) as db:  # as `fleetflow keys create` would
            key = db.create_key("admin", "local")["key"]
        app = init_app(config)
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, self.port)
                loop.run_until_complete(site.start())
                self._runner = runner
                self.port = site._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fleetflow-cloud", daemon=True)
        self._thread.start()
        if not ready.wait(60) or errors:
            raise StackError(f"the cloud did not start: {errors[0] if errors else 'timeout'}")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.api = client_mod.Client(f"http://{host}:{self.port}", key, timeout_s=30)

    def provision(self, device_id: str | None, board: str = "unix-sim", **fields) -> dict:
        """Provision through the API (the cloud's hook adds the broker user)."""
        return client_mod.credentials(self.api.provision_device(device_id, board=board, **fields))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
            self._loop = self._thread = None
        if self._log_handler is not None:
            for name in LOGGERS:
                logging.getLogger(name).removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

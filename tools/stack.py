"""A whole local fleetflow: MQTT broker + cloud on SQLite, as a user would run them.

    with Stack(workdir) as stack:
        stack.api            # tools.client.Client with an admin key
        stack.api_url        # http://127.0.0.1:PORT/api/v1
        stack.provision(device_id) -> credentials  (the device also gets its broker user)

The broker is tools.broker (Mosquitto when installed, else amqtt in-process);
the cloud is a real `fleetflow serve` process on a free port with its own
database, secret and log in `workdir`. The cloud logs in to the broker as the
`cloud` admin user. A device provisioned through the API gets its MQTT user
on the broker here, which is what the cloud's `on_provision` hook does when
the cloud runs in-process.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools import client as client_mod
from tools.broker import free_port, start_broker


class StackError(Exception):
    """The broker or the cloud did not come up."""


def fleetflow_exe() -> list[str]:
    local = Path(sys.executable).with_name("fleetflow")
    return [str(local)] if local.exists() else [sys.executable, "-m", "tools.cli"]


class Stack:
    def __init__(self, workdir, *, prefer_broker: str = "mosquitto", tick_s: float = 0.2, log=print):
        self.workdir = Path(workdir)
        self.prefer_broker = prefer_broker
        self.tick_s = tick_s
        self.log = log
        self.broker = None
        self.cloud: subprocess.Popen | None = None
        self.api: client_mod.Client | None = None
        self.db_url = f"sqlite:///{self.workdir / 'cloud.db'}"
        self.cloud_log = self.workdir / "cloud.log"

    @property
    def api_url(self) -> str:
        return self.api.api_url() if self.api else ""

    def _admin_key(self) -> str:
        proc = subprocess.run([*fleetflow_exe(), "keys", "create", "--role", "admin", "--name", "local",
                               "--db", self.db_url], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise StackError(f"fleetflow keys create failed: {proc.stderr.strip()}")
        return proc.stdout.strip().splitlines()[-1]

    def start(self) -> "Stack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cloud_pw = secrets.token_urlsafe(16)
        try:
            self.broker = start_broker(self.workdir / "broker", users={"cloud": cloud_pw}, prefer=self.prefer_broker)
            self.log(f"broker: {self.broker.kind} on {self.broker.host}:{self.broker.port}")
            key = self._admin_key()
            port = free_port()
            env = {**os.environ, "FLEETFLOW_SECRET_FILE": str(self.workdir / "cloud.secret")}
            argv = [*fleetflow_exe(), "serve", "--db", self.db_url,
                    "--mqtt", f"mqtt://cloud:{cloud_pw}@{self.broker.host}:{self.broker.port}",
                    "--bind", f"127.0.0.1:{port}", "--tick", str(self.tick_s)]
            with open(self.cloud_log, "ab") as logf:
                # Own session: Ctrl-C reaches only us, and we stop the cloud in order.
                self.cloud = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=env, start_new_session=True)
            self.api = client_mod.Client(f"http://127.0.0.1:{port}", key, timeout_s=30)
            self._wait_ready()
            self.log(f"cloud: {self.api_url} (SQLite {self.workdir / 'cloud.db'}, log {self.cloud_log})")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.cloud.poll() is not None:
                tail = self.cloud_log.read_text(errors="replace")[-2000:]
                raise StackError(f"the cloud exited ({self.cloud.returncode}):\n{tail}")
            try:
                self.api.get("/openapi.json")
                return
            except client_mod.ApiError as exc:
                if exc.status:
                    return  # it answers
            if time.monotonic() > deadline:
                raise StackError(f"the cloud did not answer within {timeout_s}s (log: {self.cloud_log})")
            time.sleep(0.2)

    def provision(self, device_id: str | None, board: str = "unix-sim", **fields) -> dict:
        """Provision through the API; the device gets its broker user too."""
        answer = self.api.provision_device(device_id, board=board, **fields)
        creds = client_mod.credentials(answer)
        self.broker.add_user(creds["device_id"], creds["mqtt_password"])
        return creds

    def stop(self) -> None:
        if self.cloud is not None and self.cloud.poll() is None:
            self.cloud.send_signal(signal.SIGINT)  # aiohttp shuts down cleanly on SIGINT
            try:
                self.cloud.wait(10)
            except subprocess.TimeoutExpired:
                self.cloud.kill()
                self.cloud.wait(5)
        self.cloud = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

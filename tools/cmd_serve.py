"""`fleetflow serve`: run the cloud (HTTP API, MQTT bridge, rollout engine).

    fleetflow serve [--db URL] [--mqtt URL] [--bind HOST:PORT]

--db    database URL (env FLEETFLOW_DB_URL; default sqlite:///var/fleetflow.db;
        postgresql://user:pw@host/db for PostgreSQL)
--mqtt  broker URL with the cloud's credentials (env FLEETFLOW_MQTT_URL;
        default mqtt://127.0.0.1:1883; `none` runs without a broker)
--bind  where to listen (env FLEETFLOW_BIND; default 127.0.0.1:8080)

Devices provisioned through the API need MQTT credentials on the broker:
with --mosquitto-passwd FILE each new device is added to that Mosquitto
password file (mosquitto_passwd -b), and with --mosquitto-pid PID the broker
is told to reload it (SIGHUP). Other brokers: use their own auth backend.

The server secret that seals device HMAC keys comes from FLEETFLOW_SECRET,
else the file FLEETFLOW_SECRET_FILE (default var/fleetflow.secret), created
on first run. Make the first API key with `fleetflow keys create --role admin`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_DB = "sqlite:///var/fleetflow.db"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_SECRET_FILE = "var/fleetflow.secret"


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the cloud: API, MQTT bridge, rollouts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default=os.environ.get("FLEETFLOW_DB_URL", DEFAULT_DB))
    p.add_argument("--mqtt", default=os.environ.get("FLEETFLOW_MQTT_URL", DEFAULT_MQTT))
    p.add_argument("--bind", default=os.environ.get("FLEETFLOW_BIND", DEFAULT_BIND))
    p.add_argument("--prefix", default=os.environ.get("FLEETFLOW_TOPIC_PREFIX", "ff"), help="MQTT topic prefix")
    p.add_argument("--mosquitto-passwd", metavar="FILE", help="add provisioned devices to this password file")
    p.add_argument("--mosquitto-pid", type=int, metavar="PID", help="SIGHUP this Mosquitto after adding one")
    p.add_argument("--tick", type=float, default=1.0, help="seconds between rollout timer checks")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def build_config(args):
    from cloud.config import Config
    from cloud.secrets import load_server_secret

    secret = load_server_secret(os.environ.get("FLEETFLOW_SECRET_FILE", DEFAULT_SECRET_FILE))
    mqtt = None if args.mqtt.lower() in ("", "none", "off") else args.mqtt
    hook = mosquitto_hook(args.mosquitto_passwd, args.mosquitto_pid) if getattr(args, "mosquitto_passwd", None) else None
    return Config(db_url=args.db, mqtt_url=mqtt, topic_prefix=args.prefix, secret=secret, engine_tick_s=args.tick,
                  on_provision=hook)


def mosquitto_hook(passwd_file: str, pid: int | None):
    """on_provision for a Mosquitto with a password file (Config.on_provision)."""
    import asyncio
    import signal
    import threading

    from tools.cmd_flash import add_mosquitto_user

    # mosquitto_passwd rewrites the whole file: two provisions running it at
    # once on executor threads could each drop the other's line.
    one_at_a_time = threading.Lock()

    def add(device_id: str, password: str) -> None:
        with one_at_a_time:
            add_mosquitto_user(passwd_file, device_id, password)
        if pid:
            os.kill(pid, signal.SIGHUP)

    def hook(device_id: str, password: str):
        return asyncio.get_running_loop().run_in_executor(None, add, device_id, password)

    return hook


class UsageError(ValueError):
    """A flag or environment value `serve` cannot use, worded for the user."""


def parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`) -> (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--bind {bind!r}: want HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_db_url(db: str) -> None:
    from urllib.parse import urlparse

    db_scheme = urlparse(db).scheme if "://" in db else "sqlite"
    if db_scheme not in ("sqlite", "postgres", "postgresql"):
        raise UsageError(f"--db {db!r}: want sqlite:///path/to.db, a bare path, or postgresql://user:pw@host/db")


def check_urls(db: str, mqtt: str) -> None:
    from urllib.parse import urlparse

    check_db_url(db)
    if mqtt.lower() not in ("", "none", "off"):
        url = urlparse(mqtt)
        try:
            url.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            url = None
        if url is None or url.scheme not in ("mqtt", "tcp") or not url.hostname:
            raise UsageError(f"--mqtt {mqtt!r}: want mqtt://user:password@host:port, or none")


def run(args) -> int:
    from aiohttp import web

    from cloud.app import init_app

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        host, port = parse_bind(args.bind)
        check_urls(args.db, args.mqtt)
    except UsageError as exc:
        print(f"fleetflow serve: {exc}", file=sys.stderr)
        return 2
    app = init_app(build_config(args))
    try:
        web.run_app(app, host=host, port=port, print=lambda msg: print(msg, flush=True))
    except OSError as exc:  # the port is taken, the address is not this machine's
        print(f"fleetflow serve: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0

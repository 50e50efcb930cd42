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
    import subprocess
    import threading

    # mosquitto_passwd rewrites the whole file: two provisions running it at
    # once on executor threads could each drop the other's line.
    one_at_a_time = threading.Lock()

    def add(device_id: str, password: str) -> None:
        with one_at_a_time:
            subprocess.run(["mosquitto_passwd", "-b", passwd_file, device_id, password], check=True,
                           capture_output=True)
        if pid:
            os.kill(pid, signal.SIGHUP)

    def hook(device_id: str, password: str):
        return asyncio.get_running_loop().run_in_executor(None, add, device_id, password)

    return hook


def run(args) -> int:
    from aiohttp import web

    from cloud.app import init_app

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, _, port = args.bind.rpartition(":")
    app = init_app(build_config(args))
    web.run_app(app, host=host or "127.0.0.1", port=int(port), print=lambda msg: print(msg, flush=True))
    return 0

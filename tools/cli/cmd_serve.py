"""`fleetflow serve`: run the cloud (HTTP API, MQTT bridge, rollout engine).

    fleetflow serve [--db URL] [--mqtt URL] [--bind HOST:PORT]

--db    database URL (env FLEETFLOW_DB_URL; default sqlite:///var/fleetflow.db;
        postgresql://user:pw@host/db for PostgreSQL)
--mqtt  broker URL with the cloud's credentials (env FLEETFLOW_MQTT_URL;
        default mqtts://127.0.0.1:8883; `none` runs without a broker)
--bind  where to listen (env FLEETFLOW_BIND; default 127.0.0.1:8080)

Devices provisioned through the API get their broker account from the
cloud itself (--broker-accounts dynsec, the default): it sends the commands
of Mosquitto's Dynamic Security plugin on $CONTROL/dynamic-security/v1 with
the --mqtt credentials (that account needs the plugin's `admin` role: README,
step 1), and deleting a device deletes its account and kicks it. No password
file is edited and no process signalled, so a broker restart changes
nothing. `--broker-accounts none`: another broker, with its own auth backend.
The old --mosquitto-passwd and --mosquitto-pid are refused with this advice.

MQTT is over TLS (mqtts://). The cloud trusts only the CA in --mqtt-ca
(env FLEETFLOW_MQTT_CA) and hands it to every device it provisions, so
`fleetflow flash --cloud` writes it into the board. Without --mqtt-ca, a
private CA and a broker certificate are made in var/tls/ on first run
(tools/infra/tls.py; keys 0600) for localhost, this machine's name and each
--tls-host, and the Mosquitto lines that use them are printed. Plain MQTT
(mqtt://, default mqtt://127.0.0.1:1883) only with --plain-mqtt, for a lab
LAN: passwords and programs then cross the network in clear.

Replicas: `--replica NAME` makes this process one of several on one
PostgreSQL and one broker (Mosquitto 2: shared subscriptions), each with
its own name and the same secret; a lease per deployment and execution
(--lease-ttl), event streams fanned out over LISTEN/NOTIFY. Behind a load
balancer: docs/replicas.md.

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
DEFAULT_MQTT = "mqtts://127.0.0.1:8883"
DEFAULT_PLAIN_MQTT = "mqtt://127.0.0.1:1883"
DEFAULT_TLS_DIR = "var/tls"
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_SECRET_FILE = "var/fleetflow.secret"


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the cloud: API, MQTT bridge, rollouts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default=os.environ.get("FLEETFLOW_DB_URL", DEFAULT_DB))
    p.add_argument("--mqtt", default=os.environ.get("FLEETFLOW_MQTT_URL"),
                   help=f"broker URL (default {DEFAULT_MQTT}; with --plain-mqtt {DEFAULT_PLAIN_MQTT})")
    p.add_argument("--mqtt-ca", metavar="FILE", default=os.environ.get("FLEETFLOW_MQTT_CA"),
                   help=f"the broker's CA (PEM); default {DEFAULT_TLS_DIR}/ca.pem, made on first run")
    p.add_argument("--tls-host", action="append", default=[], metavar="HOST",
                   help="a name or address boards reach the broker by, for the broker certificate made here")
    p.add_argument("--plain-mqtt", action="store_true",
                   help="plain MQTT (mqtt://), no TLS: only on a lab LAN you trust")
    p.add_argument("--bind", default=os.environ.get("FLEETFLOW_BIND", DEFAULT_BIND))
    p.add_argument("--prefix", default=os.environ.get("FLEETFLOW_TOPIC_PREFIX", "ff"), help="MQTT topic prefix")
    p.add_argument("--broker-accounts", choices=("dynsec", "none"),
                   default=os.environ.get("FLEETFLOW_BROKER_ACCOUNTS", "dynsec"),
                   help="who makes device accounts on the broker: the cloud, over Mosquitto's dynamic security "
                        "plugin (default), or none (the broker's own auth backend)")
    p.add_argument("--mosquitto-passwd", help=argparse.SUPPRESS)  # removed: refused with advice
    p.add_argument("--mosquitto-pid", help=argparse.SUPPRESS)
    p.add_argument("--tick", type=float, default=1.0, help="seconds between rollout timer checks")
    p.add_argument("--ha-discovery", action="store_true",
                   default=os.environ.get("FLEETFLOW_HA_DISCOVERY", "").lower() in ("1", "true", "yes"),
                   help="announce devices and what their flows expose to Home Assistant by MQTT discovery "
                        "(env FLEETFLOW_HA_DISCOVERY=1; docs/home-assistant.md)")
    p.add_argument("--ha-prefix", default="homeassistant", help="Home Assistant's discovery prefix")
    p.add_argument("--replica", metavar="NAME", default=os.environ.get("FLEETFLOW_REPLICA"),
                   help="run as one of several replicas on one PostgreSQL and one broker, under this name "
                        "(unique per replica; docs/replicas.md)")
    p.add_argument("--lease-ttl", type=float, metavar="S", default=float(os.environ.get("FLEETFLOW_LEASE_TTL", 10)),
                   help="with --replica: seconds a replica that stopped renewing keeps its leases (default 10)")
    p.add_argument("--share-group", default=os.environ.get("FLEETFLOW_SHARE_GROUP", "fleetflow"),
                   help="with --replica: the MQTT shared-subscription group of the replicas")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def build_config(args):
    from cloud.config import Config
    from cloud.dynsec import Accounts
    from cloud.secrets import load_server_secret

    secret = load_server_secret(os.environ.get("FLEETFLOW_SECRET_FILE", DEFAULT_SECRET_FILE))
    mqtt = None if args.mqtt.lower() in ("", "none", "off") else args.mqtt
    config = Config(db_url=args.db, mqtt_url=mqtt, topic_prefix=args.prefix, secret=secret, engine_tick_s=args.tick,
                    mqtt_ca_file=getattr(args, "mqtt_ca", None), ha_discovery=getattr(args, "ha_discovery", False),
                    ha_prefix=getattr(args, "ha_prefix", "homeassistant"),
                    replica=getattr(args, "replica", None) or None,
                    lease_ttl_s=getattr(args, "lease_ttl", 10.0),
                    mqtt_share_group=getattr(args, "share_group", "fleetflow"))
    if mqtt and getattr(args, "broker_accounts", "dynsec") == "dynsec":
        from cloud.dynsec import allow_discovery

        accounts = Accounts.from_config(config)
        config.on_provision, config.on_delete = accounts.add, accounts.delete
        if config.ha_discovery:  # a broker set up before discovery existed: let the cloud's role write there
            config.ha_grant = lambda: accounts.run(allow_discovery(config.ha_prefix))
    return config


def resolve_mqtt(args, log=print) -> None:
    """Fill in args.mqtt and args.mqtt_ca: TLS unless --plain-mqtt; the CA and
    the broker certificate made in var/tls/ when no CA was given."""
    from urllib.parse import urlparse

    plain = getattr(args, "plain_mqtt", False)
    args.mqtt = args.mqtt or (DEFAULT_PLAIN_MQTT if plain else DEFAULT_MQTT)
    if args.mqtt.lower() in ("", "none", "off"):
        return
    scheme = urlparse(args.mqtt).scheme
    if scheme in ("mqtt", "tcp") and not plain:
        raise UsageError(f"--mqtt {args.mqtt!r} is plain MQTT: use mqtts://... (TLS, port 8883), "
                         "or add --plain-mqtt on a lab LAN you trust")
    if scheme == "mqtts" and plain:
        raise UsageError(f"--mqtt {args.mqtt!r} is TLS but --plain-mqtt was given: choose one")
    if scheme != "mqtts":
        return
    if args.mqtt_ca:
        if not os.path.isfile(args.mqtt_ca):
            raise UsageError(f"--mqtt-ca {args.mqtt_ca!r}: no such file (the CA that signed the broker's certificate)")
        return
    from tools.infra.tls import ensure_tls, mosquitto_lines

    files = ensure_tls(DEFAULT_TLS_DIR, [urlparse(args.mqtt).hostname or "", *args.tls_host])
    args.mqtt_ca = str(files.ca)
    log(f"serve: MQTT over TLS with the CA {files.ca} (devices get it when provisioned); Mosquitto listens with:")
    log("    listener 8883\n    " + "\n    ".join(mosquitto_lines(files)))


REMOVED_FLAGS = ("--mosquitto-passwd and --mosquitto-pid are gone: the cloud now makes device accounts on "
                 "Mosquitto's dynamic security plugin over MQTT (no password file, no PID to go stale). "
                 "Load the plugin and give the cloud's broker account its admin role (README, Quickstart step 1), "
                 "or pass --broker-accounts none for a broker with its own auth backend")


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
        if url is None or url.scheme not in ("mqtts", "mqtt", "tcp") or not url.hostname:
            raise UsageError(f"--mqtt {mqtt!r}: want mqtts://user:password@host:port, or none")


def run(args) -> int:
    from aiohttp import web

    from cloud.app import init_app

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.mosquitto_passwd or args.mosquitto_pid:
            raise UsageError(REMOVED_FLAGS)
        host, port = parse_bind(args.bind)
        check_urls(args.db, args.mqtt or DEFAULT_MQTT)
        resolve_mqtt(args, log=lambda m: print(m, file=sys.stderr))
    except UsageError as exc:
        print(f"fleetflow serve: {exc}", file=sys.stderr)
        return 2
    try:
        app = init_app(build_config(args))
    except ValueError as exc:  # a replica on SQLite, a bad replica name
        print(f"fleetflow serve: {exc}", file=sys.stderr)
        return 2
    try:
        web.run_app(app, host=host, port=port, print=lambda msg: print(msg, flush=True))
    except OSError as exc:  # the port is taken, the address is not this machine's
        print(f"fleetflow serve: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0

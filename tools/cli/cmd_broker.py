"""`fleetflow broker`: set up the Mosquitto that fleetflow expects.

    fleetflow broker config [--port 8883] [--bind 0.0.0.0] [--dir /var/lib/mosquitto] [--tls-dir /etc/mosquitto/certs]
    sudo fleetflow broker init [--dir /var/lib/mosquitto] [--user cloud] [--mqtt-host broker.lan] \
        | (umask 077; cat > var/cloud.env)

`config` prints the whole Mosquitto config (tools.infra.broker.mosquitto_config:
the one README shows and the tests run). `init` bootstraps the Dynamic
Security plugin's file DIR/dynamic-security.json (0600, owned by the
`mosquitto` user when run as root) with the cloud's account: the plugin's
admin role plus readwrite on ff/#, and a new random password. It prints
`FLEETFLOW_MQTT_URL=mqtts://USER:PASSWORD@HOST:PORT` and `FLEETFLOW_MQTT_CA`
for `fleetflow serve` on stdout (only there: keep it in a 0600 file), and
refuses to overwrite an existing file (the broker's accounts are in it).

MQTT over TLS: `init` also makes the private CA and the broker certificate
in --tls-dir (tools/infra/tls.py; kept if there, the certificate valid for
--mqtt-host and each --tls-host; keys 0600, the `mosquitto` user's), which
`config`'s listener names. --plain-mqtt on both: plain MQTT on 1883, for a
lab LAN only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

DEFAULT_DIR = "/var/lib/mosquitto"
TLS_DIR = "/etc/mosquitto/certs"


def register(sub) -> None:
    p = sub.add_parser("broker", help="print the Mosquitto config; bootstrap its accounts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="broker_cmd", metavar="ACTION")
    cfg = what.add_parser("config", help="print the whole Mosquitto config")
    cfg.add_argument("--port", type=int, help="listener port (default 8883; 1883 with --plain-mqtt)")
    cfg.add_argument("--bind", default="0.0.0.0", help="listener address")
    cfg.add_argument("--dir", default=DEFAULT_DIR, help="Mosquitto's data folder (persistence, accounts)")
    cfg.add_argument("--tls-dir", default=TLS_DIR, help="the CA, broker certificate and key (fleetflow broker init)")
    cfg.add_argument("--plain-mqtt", action="store_true", help="no TLS: only on a lab LAN you trust")
    cfg.set_defaults(func=_config)
    init = what.add_parser("init", help="bootstrap the dynamic security file with the cloud's account")
    init.add_argument("--dir", default=DEFAULT_DIR, help="Mosquitto's data folder")
    init.add_argument("--user", default="cloud", help="the cloud's broker username")
    init.add_argument("--mqtt-host", default="127.0.0.1", help="the broker as the cloud reaches it")
    init.add_argument("--port", type=int, help="default 8883; 1883 with --plain-mqtt")
    init.add_argument("--tls-dir", default=TLS_DIR, help="where the CA and broker certificate are made")
    init.add_argument("--tls-host", action="append", default=[], metavar="HOST",
                      help="another name or address boards reach the broker by")
    init.add_argument("--plain-mqtt", action="store_true", help="no TLS: only on a lab LAN you trust")
    init.add_argument("--prefix", default="ff", help="MQTT topic prefix")
    init.set_defaults(func=_init)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _config(args) -> int:
    from tools.infra.broker import mosquitto_config

    port = args.port or (1883 if args.plain_mqtt else 8883)
    sys.stdout.write(mosquitto_config(port=port, host=args.bind, data_dir=args.dir.rstrip("/"),
                                      tls_dir=None if args.plain_mqtt else args.tls_dir.rstrip("/")))
    return 0


def _init(args) -> int:
    from tools.infra.broker import DYNSEC_FILE, dynsec_init

    path = Path(args.dir) / DYNSEC_FILE
    password = secrets.token_urlsafe(24)
    try:
        dynsec_init(path, args.user, password, args.prefix)
    except (FileExistsError, RuntimeError, OSError) as exc:
        print(f"fleetflow broker init: {exc}", file=sys.stderr)
        return 1
    if os.geteuid() == 0:
        try:
            shutil.chown(path, "mosquitto", "mosquitto")  # the broker rewrites it on every change
        except LookupError:  # no such user here: the file stays root's
            pass
    print(f"fleetflow broker init: {path} made (0600) with the account {args.user!r}; "
          "restart mosquitto to load it", file=sys.stderr)
    if args.plain_mqtt:
        print(f"FLEETFLOW_MQTT_URL=mqtt://{args.user}:{password}@{args.mqtt_host}:{args.port or 1883}")
        return 0
    from tools.infra.tls import ensure_tls

    files = ensure_tls(args.tls_dir, [args.mqtt_host, *args.tls_host])
    if os.geteuid() == 0:
        for p in (files.dir, files.cert, files.key, files.ca):
            try:
                shutil.chown(p, "mosquitto", "mosquitto")  # it reads them after dropping root
            except LookupError:
                pass
    print(f"fleetflow broker init: CA {files.ca} (devices get it), broker certificate {files.cert}", file=sys.stderr)
    print(f"FLEETFLOW_MQTT_URL=mqtts://{args.user}:{password}@{args.mqtt_host}:{args.port or 8883}")
    print(f"FLEETFLOW_MQTT_CA={files.ca}")
    return 0

"""`fleetflow flash`: build the bundle for a board, provision it, copy it with mpremote.

    fleetflow flash --board esp32-devkitc --port /dev/ttyUSB0 \\
        --device-id kitchen-1 --wifi-ssid home --wifi-password secret \\
        --mqtt-host 192.168.1.10 --mqtt-password pw --key 00112233...
    fleetflow flash --board rp2-pico-w --port /dev/ttyACM0 \\
        --cloud http://192.168.1.10:8080 --api-key KEY --wifi-ssid home --wifi-password secret

With --cloud the device is provisioned through the API, which hands out its
MQTT password and HMAC key once; they go straight into the board's config.

MQTT over TLS: the board verifies the broker's certificate against the CA
written into its config: --mqtt-ca FILE, else the one the cloud's answer
carries, else var/tls/ca.pem (what `fleetflow serve` makes). The board needs
the right time for that check: the agent brings Wi-Fi up and sets the clock
by NTP (ntptime) before its first handshake (firmware/fleetflow/net.py). Plain MQTT only
with --plain-mqtt, for a lab LAN.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import urllib.parse
from pathlib import Path

from tools.device import bundle as bundle_mod
from tools.cli import client as client_mod
from tools.device import device_config, flashing

BOARDS = ("esp32-devkitc", "rp2-pico-w", "unix-sim")
VAR = bundle_mod.REPO / "var" / "bundles"
DEFAULT_CA = Path("var/tls/ca.pem")  # where `fleetflow serve` makes it (relative: like its database)


def register(sub) -> None:
    p = sub.add_parser("flash", help="build the firmware bundle for a board and flash it with mpremote",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, choices=BOARDS)
    p.add_argument("--port", help="serial port (or pty of a unix-port REPL for unix-sim); omit with --bundle-only")
    prov = p.add_argument_group("provisioning (or take it from --cloud)")
    prov.add_argument("--device-id")
    prov.add_argument("--wifi-ssid")
    prov.add_argument("--wifi-password")
    prov.add_argument("--mqtt-host", help="broker host as the board sees it (default: the --cloud host)")
    prov.add_argument("--mqtt-port", type=int)
    prov.add_argument("--mqtt-user", help="default: the device id")
    prov.add_argument("--mqtt-password")
    prov.add_argument("--key", help="HMAC-SHA256 key, hex (default: a new random one)")
    prov.add_argument("--mqtt-ca", metavar="FILE", type=Path,
                      help=f"the broker's CA, PEM (default: the cloud's, else {DEFAULT_CA})")
    prov.add_argument("--plain-mqtt", action="store_true", help="plain MQTT, no TLS: only on a lab LAN you trust")
    cloud = p.add_argument_group("cloud provisioning")
    cloud.add_argument("--cloud", metavar="URL", help="provision the device through this cloud's API")
    cloud.add_argument("--api-key")
    cloud.add_argument("--mosquitto-passwd", help=argparse.SUPPRESS)  # removed: refused with advice
    p.add_argument("--out", type=Path, help=f"bundle folder (default {VAR}/<board>-<device>)")
    p.add_argument("--no-mip", action="store_true", help="skip `mip install umqtt.simple` (already on the board)")
    p.add_argument("--offline", action="store_true",
                   help="no internet here: ship the pinned umqtt.simple in the bundle instead of `mip install`")
    p.add_argument("--romfs", action="store_true",
                   help="put the code into the board's ROMFS partition (mpremote romfs deploy), where it runs "
                        "in place instead of in the heap: ~24 KB more free heap; needs a firmware with ROMFS")
    p.add_argument("--bundle-only", action="store_true", help="build the bundle, do not flash")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def provisioning_from(args, log=print) -> dict:
    prov = {
        "device_id": args.device_id,
        "wifi_ssid": args.wifi_ssid,
        "wifi_password": args.wifi_password,
        "mqtt_host": args.mqtt_host,
        "mqtt_port": args.mqtt_port,
        "mqtt_user": args.mqtt_user,
        "mqtt_password": args.mqtt_password,
        "key": args.key,
    }
    if args.cloud:
        api = client_mod.Client(args.cloud, args.api_key)
        answer = api.provision_device(args.device_id, board=args.board)
        got = client_mod.credentials(answer)
        log(f"flash: provisioned {got.get('device_id')} at {api.url} (its key is shown only once: it is in the bundle now)")
        # What the operator passed wins over what the cloud suggests (e.g. the
        # broker's address as the board's network sees it).
        prov = {**got, **{k: v for k, v in prov.items() if v is not None}}
        prov.setdefault("mqtt_host", urllib.parse.urlparse(api.url).hostname)
    if not prov.get("device_id"):
        raise device_config.ConfigError("give --device-id (or --cloud to have one assigned)")
    if not prov.get("key"):
        prov["key"] = secrets.token_hex(32)
        log("flash: no --key given: generated one; register it with the cloud for this device")
    return {k: v for k, v in prov.items() if v is not None}


def _choose_ca(prov: dict, args, log) -> None:
    """prov["mqtt_ca"]: --mqtt-ca, else the cloud's, else DEFAULT_CA; none only with --plain-mqtt."""
    if getattr(args, "plain_mqtt", False):
        prov.pop("mqtt_ca", None)
        log("flash: plain MQTT (--plain-mqtt): the board's password and programs cross the network in clear")
        return
    path = getattr(args, "mqtt_ca", None)
    if path is None and not prov.get("mqtt_ca") and DEFAULT_CA.is_file():
        path = DEFAULT_CA
    if path is not None:
        try:
            prov["mqtt_ca"] = Path(path).read_text()
        except OSError as exc:
            raise device_config.ConfigError(f"--mqtt-ca {path}: {exc.strerror or exc}") from None
    if not prov.get("mqtt_ca"):
        raise device_config.ConfigError(
            f"no CA for MQTT over TLS: give --mqtt-ca FILE (the CA that signed the broker's certificate; "
            f"`fleetflow serve` makes {DEFAULT_CA}), or --plain-mqtt on a lab LAN you trust")


LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "")


# The cloud makes a device's broker account when it provisions it; a
# password file is no longer how the broker learns about devices.
NO_PASSWD_FILE = ("--mosquitto-passwd is gone: provision the device through the cloud (--cloud, or "
                  "`fleetflow devices provision`), which makes its account on Mosquitto's dynamic security plugin")


def run(args) -> int:
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.mosquitto_passwd:
        log(f"flash: {NO_PASSWD_FILE}")
        return 2
    if not (args.port or args.bundle_only):  # before a device is provisioned for nothing
        log("flash: --port is needed to flash (or --bundle-only)")
        return 2
    try:
        prov = provisioning_from(args, log)
        device_config.check(prov)
        if args.board != "unix-sim" and prov["mqtt_host"] in LOOPBACK:
            raise device_config.ConfigError(
                f"MQTT host {prov['mqtt_host']!r} is this machine's own address: a board cannot reach it; "
                "give --mqtt-host with the broker's address on the board's network")
        _choose_ca(prov, args, log)
        device_config.check(prov)
        out = args.out or VAR / f"{args.board}-{prov['device_id']}"
        bundle = bundle_mod.build_bundle(args.board, out, prov,
                                         with_umqtt=True if (args.offline or args.romfs) else None)
        s = bundle.summary()
        log(f"bundle: {args.board} ({s['march']}), {s['files']} files, firmware {s['code_bytes']} B "
            f"of {s['budget_bytes']} B budget ({s['budget_used']:.0%}) at {out}")
        if not bundle.within_budget:
            log("bundle: OVER the flash budget")
        result = {"bundle": s, "out": str(out), "device_id": prov["device_id"]}
        if not args.bundle_only:
            unix = args.board == "unix-sim"
            result["flash"] = flashing.flash(bundle, args.port, unix=unix, mip=not (args.no_mip or args.offline),
                                             log=log, romfs=args.romfs)
    except (bundle_mod.BundleError, flashing.FlashError, device_config.ConfigError, client_mod.ApiError) as exc:
        log(f"flash: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0

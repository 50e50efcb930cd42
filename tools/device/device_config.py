"""The device config file a flashed board boots with (provisioning).

One JSON file at the filesystem root; the device agent reads it at boot
(firmware/fleetflow/config.py). `render(provisioning)` checks the fields and
returns its text; it never holds secrets anywhere else.

`mqtt_ca` (the installation's CA, PEM: var/tls/ca.pem, or what the cloud's
provisioning answer carries) makes the device's link MQTT over TLS: it goes
into the config as `mqtt.ca`, base64 DER, and the port defaults to 8883.
Without it the link is plain MQTT (port 1883), which only `--plain-mqtt`
asks for.
"""

from __future__ import annotations

import json
import re

from tools.infra import tls

FILENAME = "config.json"
TLS_PORT = 8883    # MQTT over TLS (IANA)
PLAIN_PORT = 1883

# provisioning key -> (required, type); the device needs these to come online.
FIELDS = {
    "device_id": (True, str),
    "wifi_ssid": (False, str),
    "wifi_password": (False, str),
    "mqtt_host": (True, str),
    "mqtt_port": (False, int),
    "mqtt_user": (False, str),
    "mqtt_password": (False, str),
    "mqtt_ca": (False, str),  # PEM; TLS when given
    "key": (True, str),  # HMAC-SHA256 key, hex
    "prefix": (False, str),
}
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


class ConfigError(ValueError):
    """Provisioning that no device could boot with."""


def check(provisioning: dict) -> dict:
    unknown = set(provisioning) - set(FIELDS)
    if unknown:
        raise ConfigError(f"unknown provisioning fields: {', '.join(sorted(unknown))}")
    out = {}
    for name, (required, kind) in FIELDS.items():
        value = provisioning.get(name)
        if value is None:
            if required:
                raise ConfigError(f"provisioning needs {name}")
            continue
        if kind is int:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be an integer, not {value!r}") from None
        elif not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, not {value!r}")
        out[name] = value
    if not _DEVICE_ID.match(out["device_id"]):
        raise ConfigError(f"device_id {out['device_id']!r}: letters, digits, _ . - only (it is an MQTT topic level)")
    if not _HEX.match(out["key"]):
        raise ConfigError("key must be hex (the HMAC-SHA256 key)")
    if "mqtt_ca" in out:
        try:
            tls.ca_der_b64(out["mqtt_ca"])
        except tls.TlsError as exc:
            raise ConfigError(f"mqtt_ca: {exc} (give the broker's CA, e.g. var/tls/ca.pem)") from None
    return out


def render(provisioning: dict, board: str | None = None) -> str:
    """The config.json text for a device."""
    cfg = check(provisioning)
    ca = cfg.get("mqtt_ca")
    doc = {
        "device_id": cfg["device_id"],
        "board": board,
        "wifi": {"ssid": cfg.get("wifi_ssid", ""), "password": cfg.get("wifi_password", "")},
        "mqtt": {
            "host": cfg["mqtt_host"],
            "port": cfg.get("mqtt_port", TLS_PORT if ca else PLAIN_PORT),
            "user": cfg.get("mqtt_user", cfg["device_id"]),
            "password": cfg.get("mqtt_password", ""),
            **({"ca": tls.ca_der_b64(ca)} if ca else {}),
        },
        "key": cfg["key"].lower(),
        "prefix": cfg.get("prefix", "ff"),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))

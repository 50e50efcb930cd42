# Device configuration: config.json (provisioning, tools/device/device_config.py
# writes it) and board.json (the board definition), both at the filesystem
# root. Settings are one dict of defaults the files override (mqtt_as style).
import json
from fleetflow.errors import FFError

DEFAULTS = {
    "prefix": "ff",
    "health_interval_s": 30,   # heartbeat period on ff/<dev>/health
    "keepalive_s": 30,         # MQTT keepalive; we ping at half of it
    "socket_timeout_s": 5,     # no read or write waits longer for a dead broker
    "backoff_min_ms": 500,     # reconnect backoff: doubles per failure ...
    "backoff_max_ms": 30000,   # ... up to this, with +-25% jitter
    "runs_buffer": 16,         # run records kept while offline (oldest dropped) ...
    "runs_buffer_rows": 128,   # ... and no more node rows than this (a record has one per node)
    "runs_batch": 8,           # records per ff/<dev>/runs message
    "sim": None,               # simulated sensors (unix-sim HAL)
    "heap_log": False,         # print the GC's summary (free, largest free block) at each
                               # health tick and after commands: `fleetflow bench agent`
}


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        raise FFError("%s missing: provision the device first" % path)
    except ValueError:
        raise FFError("%s is not valid JSON" % path)


def load(root=""):
    """The merged config: DEFAULTS, then config.json; `board` is board.json."""
    pre = root + "/" if root else ""
    raw = _read_json(pre + "config.json")
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for k in ("device_id", "key", "mqtt"):
        if not cfg.get(k):
            raise FFError("config.json: %s is required" % k)
    mq = cfg["mqtt"]
    # mqtt.ca (the broker's CA, base64 DER) makes the link TLS (fleetflow.link)
    ca = mq.get("ca")
    if ca:
        from binascii import a2b_base64
        try:
            mq["ca"] = a2b_base64(ca)
        except (ValueError, TypeError):
            raise FFError("config.json: mqtt.ca is not base64 (the CA in DER, as fleetflow flash writes it)")
    mq.setdefault("port", 8883 if ca else 1883)
    mq.setdefault("user", cfg["device_id"])
    mq.setdefault("password", "")
    cfg["board"] = _slim(_read_json(pre + "board.json"), pre + "board.json")
    return cfg


# What the device keeps of board.json; the rest is for the host or read when
# needed. `nt_hash` is the node table's hash, precomputed by the bundle
# (tools/device/bundle.py). The pin map and the reserved pins' reasons (~5.5 KB
# parsed on the 64-bit port) only matter while a program is checked:
# fleetflow.params reads them from `path` then.
_BOARD_KEYS = ("name", "nodes", "program_max_bytes", "msg_max_bytes", "watchdog_ms", "nt_hash")


def _slim(board, path):
    b = {k: board[k] for k in _BOARD_KEYS if k in board}
    b["path"] = path
    return b

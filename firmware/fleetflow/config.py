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
    board = _read_json(pre + "board.json")
    cfg["board"] = _slim(board, pre + "board.json")
    if write_pin_index(board, pre + "ff_pins.txt"):
        cfg["board"]["pin_index"] = pre + "ff_pins.txt"
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


def write_pin_index(board, path):
    # The pin map and the reserved pins as one line each ("P <gpio> <uses>",
    # "R <gpio> <reason>"), written at boot on a clean heap when they
    # changed: a program check looks its pins up line by line
    # (fleetflow.params) instead of parsing board.json (~5.5 KB parsed on
    # the 64-bit port, a deploy's or an execution's peak). False if it
    # can't be written (the check then parses board.json).
    lines = []
    pins = board.get("pins") or {}
    for k in pins:
        lines.append("P %s %s\n" % (k, ",".join(pins[k])))
    reserved = board.get("reserved") or {}
    for k in reserved:
        lines.append("R %s %s\n" % (k, str(reserved[k]).replace("\n", " ")))
    text = "".join(lines)
    lines = None
    try:
        with open(path) as f:
            if f.read() == text:
                return True
    except OSError:
        pass
    try:
        import os
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
        return True
    except OSError:
        return False

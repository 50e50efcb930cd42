# dht: DHT22 / DHT11 temperature and humidity sensor.
#
# The DHT22 fails often in the field (a missed start pulse reads as
# OSError ETIMEDOUT, a corrupted frame as "checksum error"), so a failed read
# is retried, each retry logged; when every try fails the failure is
# reported as data in the run record, not raised: the flow carries on with
# the next poll.
from fleetflow.nodes import REQ

TYPE = "dht"
KIND = "source"
TRIGGER = "poll"
PORTS = 1
LOGS = True
DOC = "reads temperature and humidity; a failed read is retried, then reported as data"
EMITS = ("value", "temperature", "humidity")
PARAMS = (
    ("pin", "pin", REQ, None, None, "in"),
    ("model", "enum", "dht22", None, None, ("dht22", "dht11")),
    ("every", "ms", 5000, 2000, 86400000, None),
    ("retries", "int", 2, 0, 5, None),
)


def setup(cfg, hal, idx):
    return hal.dht(cfg["pin"], cfg["model"])


def _why(e):
    if isinstance(e, OSError) and e.args and e.args[0] == 110:
        return "timeout (no answer; check wiring and the pull-up)"
    return "%s: %s" % (type(e).__name__, e)


def run(cfg, sensor, msg, ctx):
    tries = cfg["retries"] + 1
    why = ""
    for n in range(tries):
        try:
            sensor.measure()
            t = sensor.temperature()
            return {"value": t, "temperature": t, "humidity": sensor.humidity()}
        except Exception as e:
            why = _why(e)
            if n + 1 < tries:
                ctx.log("warning", "read failed, retry %d/%d: %s" % (n + 1, tries - 1, why))
    ctx.log("error", "read failed after %d tries: %s" % (tries, why))
    return "read failed after %d tries: %s" % (tries, why)

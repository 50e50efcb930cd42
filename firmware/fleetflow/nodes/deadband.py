# deadband: passes a message only when its value moved by at least `delta`
# since the last one passed, or `max_silence` ms went by without one.
from fleetflow.errors import FFError

TYPE = "deadband"
KIND = "logic"
TRIGGER = None
PORTS = 1
DOC = "passes only on a change of at least delta, or after max_silence ms (0: never)"
PARAMS = (
    ("property", "str", "value", 1, 32, None),
    ("delta", "num", 1, 0, None, None),
    ("max_silence", "ms", 0, 0, 86400000, None),
)


def prep(p):
    return (p["property"], p["delta"], p["max_silence"])


def setup(cfg, hal, idx):
    return [None, 0]        # last value passed, when


def run(cfg, mem, msg, ctx):
    import time
    v = msg[cfg[0]]
    if type(v) is not int and type(v) is not float:
        raise FFError("%s is not a number: %r" % (cfg[0], v))
    last = mem[0]
    if (last is None or abs(v - last) >= cfg[1]
            or (cfg[2] and time.ticks_diff(ctx.now_ms, mem[1]) >= cfg[2])):
        mem[0] = v
        mem[1] = ctx.now_ms
        return msg
    return None

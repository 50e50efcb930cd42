# delay: passes the message on after `ms`, as a continuation run the
# interpreter starts from poll(): the device loop (and MQTT) keeps going.
# Memory budget: a fast trigger in front of a long delay would queue
# continuations without end; past MAX_PENDING timers the node fails (the
# check lives here, not in the interpreter: only flows with timers pay for it).
from micropython import const

from fleetflow.errors import FFError

MAX_PENDING = const(32)
TYPE = "delay"
KIND = "logic"
TRIGGER = None
PORTS = 1
TIMERS = True      # sets timers (the interpreter loads its timer code)
DOC = "passes the message on after ms, without stalling the device loop"
PARAMS = (
    ("ms", "ms", 1000, 1, 3600000, None),
)


def setup(cfg, hal, idx):
    return idx


def run(cfg, idx, msg, ctx):
    if ctx.pending() >= MAX_PENDING:
        raise FFError("memory budget: %d timers pending" % MAX_PENDING)
    ctx.resume(cfg["ms"], idx, msg)
    return None

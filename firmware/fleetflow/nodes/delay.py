# delay: passes the message on after `ms`, as a continuation run the
# interpreter starts from poll(): the device loop (and MQTT) keeps going.
# Memory budget: a fast trigger in front of a long delay would queue
# continuations without end; with 32 timers pending the node fails (the check
# lives here, not in the interpreter: only flows with timers pay for it; a
# MemoryError by name, so no import).
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
    if ctx.pending() >= 32:
        raise MemoryError("memory budget: 32 timers pending")
    ctx.resume(cfg["ms"], idx, msg)
    return None

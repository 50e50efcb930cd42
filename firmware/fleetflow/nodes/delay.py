# delay: passes the message on after `ms`, as a continuation run the
# interpreter starts from poll(): the device loop (and MQTT) keeps going.
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
    ctx.resume(cfg["ms"], idx, msg)
    return None

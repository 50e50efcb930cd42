# gpio_in: emits the input level on an edge.
# Edges are found by sampling the pin on every poll() of the device loop
# (the same on the real and simulated boards, and no IRQ handler that
# could allocate; while a program has one the loop wakes every 5 ms,
# Interpreter.idle_ms); a change counts only once debounce_ms has passed since
# the last accepted one, which swallows contact bounce.
from fleetflow.nodes import REQ

TYPE = "gpio_in"
KIND = "source"
TRIGGER = "edge"
PORTS = 1
DOC = "emits the level of a GPIO input on an edge (debounced)"
EMITS = ("value", "pin")
EDGES = ("rising", "falling", "both")
PARAMS = (
    ("pin", "pin", REQ, None, None, "in"),
    ("pull", "enum", "none", None, None, ("up", "down", "none")),
    ("edge", "enum", "both", None, None, EDGES),
    ("debounce_ms", "ms", 20, 0, 10000, None),
)


def prep(p):
    return (p["pin"], p["pull"], EDGES.index(p["edge"]), p["debounce_ms"])


def setup(cfg, hal, idx):
    pin = hal.pin_in(cfg[0], cfg[1])
    return [pin, pin.value(), None]     # pin, accepted level, when accepted


def edge(cfg, mem, now_ms):
    import time
    v = mem[0].value()
    if v == mem[1]:
        return False
    if mem[2] is not None and time.ticks_diff(now_ms, mem[2]) < cfg[3]:
        return False                    # bounce: too soon after the last change
    mem[1] = v
    mem[2] = now_ms
    e = cfg[2]
    return e == 2 or (e == 0 and v == 1) or (e == 1 and v == 0)


def run(cfg, mem, msg, ctx):
    return {"value": mem[1], "pin": cfg[0]}

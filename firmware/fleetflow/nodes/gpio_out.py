# gpio_out: drives a relay or an LED.
# `pulse` sets the pin, then a timer puts it back after pulse_ms: the device
# loop is never held for the pulse. `follow` sets the pin from the
# message's value (truthy -> 1).
from fleetflow.nodes import REQ

TYPE = "gpio_out"
KIND = "sink"
TRIGGER = None
PORTS = 1
DOC = "drives a GPIO output: set, toggle, pulse, or follow the message value"
MODES = ("set", "toggle", "pulse", "follow")
PARAMS = (
    ("pin", "pin", REQ, None, None, "out"),
    ("mode", "enum", "set", None, None, MODES),
    ("value", "int", 1, 0, 1, None),
    ("pulse_ms", "ms", 100, 1, 60000, None),
)


def TIMERS(cfg):
    # only a pulse sets a timer (the interpreter loads its timer code for it)
    return cfg[1] == 2


def prep(p):
    return (p["pin"], MODES.index(p["mode"]), p["value"], p["pulse_ms"])


def setup(cfg, hal, idx):
    return hal.pin_out(cfg[0])


def _restore(arg):
    arg[0].value(arg[1])


def run(cfg, pin, msg, ctx):
    mode = cfg[1]
    if mode == 0:
        pin.value(cfg[2])
    elif mode == 1:
        pin.value(1 - pin.value())
    elif mode == 2:
        if ctx.pending() >= 32:     # the memory budget of timers, as delay's
            raise MemoryError("memory budget: 32 timers pending")
        pin.value(cfg[2])
        ctx.later(cfg[3], _restore, (pin, 1 - cfg[2]))
    else:
        pin.value(1 if msg.get("value") else 0)
    return msg

# pwm: drives a PWM output; duty is 0..65535 (duty_u16, the same on ESP32
# and RP2040). A message with a numeric `duty` field overrides it per message.
from fleetflow.nodes import REQ

TYPE = "pwm"
KIND = "sink"
TRIGGER = None
PORTS = 1
DOC = "drives PWM at freq Hz with duty 0..65535 (a message's numeric duty field wins)"
PARAMS = (
    ("pin", "pin", REQ, None, None, "pwm"),
    ("freq", "int", 1000, 1, 40000000, None),
    ("duty", "int", 32768, 0, 65535, None),
)


def setup(cfg, hal, idx):
    return hal.pwm(cfg["pin"], cfg["freq"], cfg["duty"])


def run(cfg, pwm, msg, ctx):
    d = msg.get("duty", cfg["duty"])
    if type(d) is not int or not 0 <= d <= 65535:
        d = cfg["duty"]
    if pwm.freq() != cfg["freq"]:
        pwm.freq(cfg["freq"])
    pwm.duty_u16(d)
    return msg


def teardown(cfg, pwm):
    pwm.deinit()

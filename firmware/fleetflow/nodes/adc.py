# adc: reads an analog input (0..65535 raw) and emits raw * scale + offset.
from fleetflow.nodes import REQ

TYPE = "adc"
KIND = "source"
TRIGGER = "poll"
PORTS = 1
DOC = "reads an analog input every `every` ms and emits raw * scale + offset (raw is 0..65535)"
EMITS = ("value", "raw", "pin")
PARAMS = (
    ("pin", "pin", REQ, None, None, "adc"),
    ("every", "ms", 1000, 10, 86400000, None),
    ("scale", "num", 1, None, None, None),
    ("offset", "num", 0, None, None, None),
)


def setup(cfg, hal, idx):
    return hal.adc(cfg["pin"])


def run(cfg, adc, msg, ctx):
    raw = adc.read_u16()
    return {"value": raw * cfg["scale"] + cfg["offset"], "raw": raw, "pin": cfg["pin"]}

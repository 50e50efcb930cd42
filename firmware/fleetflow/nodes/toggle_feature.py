# toggle_feature: maintenance -- turns a device feature flag on or off
# (the agent and nodes read ctx.dev.features).
from fleetflow.nodes import REQ

TYPE = "toggle_feature"
KIND = "maint"
TRIGGER = None
PORTS = 1
DOC = "maintenance: turns a device feature flag on or off"
PARAMS = (
    ("name", "str", REQ, 1, 32, None),
    ("enabled", "bool", True, None, None, None),
)


def run(cfg, mem, msg, ctx):
    ctx.dev.features[cfg["name"]] = cfg["enabled"]
    return msg

# mqtt_out: publishes the message as JSON on ff/<dev>/out/<topic>.
# The interpreter hands it to its publish callback (the agent's MQTT
# client); the node never blocks on the network itself.
import json

TYPE = "mqtt_out"
KIND = "sink"
TRIGGER = None
PORTS = 1
DOC = "publishes the message as JSON below ff/<dev>/out/"
PARAMS = (
    ("topic", "topic", "events", 1, 64, None),
    ("qos", "int", 0, 0, 1, None),
    ("retain", "bool", False, None, None, None),
)


def prep(p):
    return (p["topic"], p["qos"], p["retain"])


def run(cfg, mem, msg, ctx):
    ctx.publish(cfg[0], json.dumps(msg), cfg[1], cfg[2])
    return msg

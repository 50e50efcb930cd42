# change: rewrites one field of the message (returns a changed copy).
from fleetflow.errors import FFError

TYPE = "change"
KIND = "logic"
TRIGGER = None
PORTS = 1
DOC = "rewrites the message: set, scale, offset, round or rename a field"
ACTIONS = ("set", "scale", "offset", "round", "rename")
PARAMS = (
    ("property", "str", "value", 1, 32, None),
    ("action", "enum", "set", None, None, ACTIONS),
    ("value", "any", 0, None, None, None),
    ("to", "str", "", 0, 32, None),
)


def prep(p):
    act = ACTIONS.index(p["action"])
    v = p["value"]
    if act in (1, 2) and type(v) is not int and type(v) is not float:
        raise FFError("value: want a number to %s by, got %r" % (p["action"], v))
    if act == 3 and (type(v) is not int or not 0 <= v <= 6):
        raise FFError("value: want 0..6 decimal places, got %r" % (v,))
    if act == 4 and not p["to"]:
        raise FFError("to: rename needs a new field name")
    return (p["property"], act, v, p["to"])


def run(cfg, mem, msg, ctx):
    m = dict(msg)
    k = cfg[0]
    act = cfg[1]
    if act == 0:
        m[k] = cfg[2]
    elif act == 1:
        m[k] = m[k] * cfg[2]
    elif act == 2:
        m[k] = m[k] + cfg[2]
    elif act == 3:
        m[k] = round(m[k], cfg[2])
    else:
        m[cfg[3]] = m.pop(k)
    return m

# switch: routes a message by comparing one of its fields.
from fleetflow.errors import FFError

TYPE = "switch"
KIND = "logic"
TRIGGER = None
PORTS = 2
DOC = "port 0 when the comparison holds, port 1 otherwise"
OPS = ("gt", "lt", "ge", "le", "eq", "ne", "between")
PARAMS = (
    ("property", "str", "value", 1, 32, None),
    ("op", "enum", "gt", None, None, OPS),
    ("value", "any", 0, None, None, None),
    ("value2", "any", 0, None, None, None),
    ("hysteresis", "num", 0, 0, None, None),
)

_NUMERIC = ("gt", "lt", "ge", "le", "between")


def _num(name, v):
    t = type(v)
    if t is not int and t is not float:
        raise FFError("%s: want a number for this op, got %r" % (name, v))


def prep(p):
    op = p["op"]
    if op in _NUMERIC:
        _num("value", p["value"])
        if op == "between":
            _num("value2", p["value2"])
            if p["value2"] < p["value"]:
                raise FFError("value2: below value for between")
    # (property, op index, value, value2, hysteresis)
    return (p["property"], OPS.index(op), p["value"], p["value2"], p["hysteresis"])


def setup(cfg, hal, idx):
    return [False]      # did the comparison hold last time (for hysteresis)


def run(cfg, mem, msg, ctx):
    v = msg[cfg[0]]
    op = cfg[1]
    ref = cfg[2]
    h = cfg[4]
    if h and mem[0]:
        # held last time: keep holding until the value leaves the band
        if op == 0:
            ref -= h
        elif op == 1:
            ref += h
    if op == 0:
        ok = v > ref
    elif op == 1:
        ok = v < ref
    elif op == 2:
        ok = v >= ref
    elif op == 3:
        ok = v <= ref
    elif op == 4:
        ok = v == ref
    elif op == 5:
        ok = v != ref
    else:
        ok = ref <= v <= cfg[3]
    mem[0] = ok
    return 0 if ok else 1

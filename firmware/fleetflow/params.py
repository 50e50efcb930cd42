# Node params: the compact spec each node module declares, its catalog
# form, and the checks the program loader applies to every value.
#
# A spec is a tuple (name, type, default, lo, hi, extra):
#   type   int | num | bool | str | enum | pin | topic | ms | any
#   default REQ when the param is required
#   lo, hi  bounds of the value (int, num, ms) or of the length (str, topic);
#           None when unbounded
#   extra   the choices tuple of an enum, the use (in|out|adc|pwm) of a pin
from fleetflow.errors import FFError

from fleetflow.nodes import REQ  # noqa: F401 (re-exported)

NAME, TYPE, DEFAULT, LO, HI, EXTRA = 0, 1, 2, 3, 4, 5


def _num_ok(v):
    t = type(v)
    return t is int or t is float


def _bounds(nid, name, v, lo, hi, what):
    if lo is not None and v < lo:
        raise FFError("%s.%s: %s %s below min %s" % (nid, name, what, v, lo))
    if hi is not None and v > hi:
        raise FFError("%s.%s: %s %s above max %s" % (nid, name, what, v, hi))


def check_value(nid, spec, v):
    """Return v if it fits spec, else raise FFError naming node nid and the param."""
    name, typ, default, lo, hi, extra = spec
    t = type(v)
    if typ == "int" or typ == "ms":
        if t is not int:
            raise FFError("%s.%s: want an integer%s, got %s" % (
                nid, name, " (ms)" if typ == "ms" else "", _tname(v)))
        _bounds(nid, name, v, lo, hi, "value")
    elif typ == "num":
        if not _num_ok(v):
            raise FFError("%s.%s: want a number, got %s" % (nid, name, _tname(v)))
        if t is float and (v != v or v in (float("inf"), float("-inf"))):
            raise FFError("%s.%s: want a finite number" % (nid, name))
        _bounds(nid, name, v, lo, hi, "value")
    elif typ == "bool":
        if t is not bool:
            raise FFError("%s.%s: want true or false, got %s" % (nid, name, _tname(v)))
    elif typ == "str" or typ == "topic":
        if t is not str:
            raise FFError("%s.%s: want a string, got %s" % (nid, name, _tname(v)))
        _bounds(nid, name, len(v), lo, hi, "length")
        if typ == "topic":
            _check_topic(nid, name, v)
    elif typ == "enum":
        if t is not str or v not in extra:
            raise FFError("%s.%s: want one of %s, got %s" % (nid, name, "|".join(extra), _short(v)))
    elif typ == "pin":
        if t is not int or v < 0:
            raise FFError("%s.%s: want a GPIO number, got %s" % (nid, name, _tname(v)))
    elif typ != "any":
        raise FFError("%s.%s: unknown param type %s" % (nid, name, typ))
    return v


def _check_topic(nid, name, v):
    for bad in ("+", "#", "\x00"):
        if bad in v:
            raise FFError("%s.%s: topic may not contain %r" % (nid, name, bad))
    if v.startswith("/") or v.endswith("/") or "//" in v:
        raise FFError("%s.%s: topic has an empty level" % (nid, name))


def check_pin(nid, spec, pin, board):
    """Refuse a pin the board lacks, reserves, or can't use this way."""
    if board is None:
        return
    name = spec[0]
    key = str(pin)
    bname = board.get("name", "?")
    found = False
    if "pins" not in board and board.get("pin_index"):
        try:
            why, caps = _indexed(board["pin_index"], key)
            found = True
        except OSError:  # the index is gone: board.json then
            pass
    if not found:
        if "pins" not in board:
            board = _pin_map(board)
        why = (board.get("reserved") or {}).get(key)
        caps = (board.get("pins") or {}).get(key)
    if why is not None:
        raise FFError("%s.%s: GPIO %d is reserved (%s)" % (nid, name, pin, why))
    if caps is None:
        raise FFError("%s.%s: board %s has no GPIO %d" % (nid, name, bname, pin))
    if spec[EXTRA] not in caps:
        raise FFError("%s.%s: GPIO %d can't be used as %s (it can: %s)" % (
            nid, name, pin, spec[EXTRA], ",".join(caps)))


# The agent keeps only the board's name and limits in RAM (fleetflow.config):
# its pin map, parsed, is ~5.5 KB on the 64-bit port and only a program check
# needs it. board["pin_index"] names the index fleetflow.config writes at
# boot, where a pin is looked up line by line; without it, board["path"]
# names the board.json to parse it from (this module is cold code, unloaded
# with the loader, so the map is kept for one check).
_pins = [None, None]


def _indexed(path, key):
    # (reserved reason, uses) of GPIO `key` from the pin index
    # fleetflow.config writes at boot, read a line at a time
    why = caps = None
    with open(path) as f:
        for line in f:
            if line[2:3 + len(key)] == key + " ":
                rest = line[3 + len(key):].rstrip("\n")
                if line[0] == "R":
                    why = rest
                else:
                    caps = rest.split(",")
    return why, caps


def _pin_map(board):
    path = board.get("path")
    if path is None:
        return board
    if _pins[0] != path:
        import json
        with open(path) as f:
            b = json.load(f)
        _pins[0], _pins[1] = path, {"name": board.get("name"), "pins": b.get("pins"),
                                    "reserved": b.get("reserved")}
    return _pins[1]


def _tname(v):
    if v is None:
        return "null"
    return "%s %s" % (type(v).__name__, _short(v))


def _short(v):
    s = repr(v)
    return s if len(s) <= 24 else s[:21] + "..."

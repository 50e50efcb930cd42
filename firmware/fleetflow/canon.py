# Canonical JSON: sorted keys, no whitespace, ASCII only -- byte for byte
# what CPython's json.dumps(obj, sort_keys=True, separators=(",", ":"),
# ensure_ascii=True) writes. MicroPython's json has no sort_keys, and the
# node-table hash must match the one the host computes.
# Floats are refused: MicroPython and CPython print some floats differently,
# so hashed data (the catalog) keeps to integers.
from fleetflow.errors import FFError

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
        "\b": "\\b", "\f": "\\f"}


def _str(s, out):
    # Most strings need no escaping: append them whole. One list item per
    # character made the node-table dump a list of ~8000 items, a 64 KB
    # allocation the device heap can't always find at boot.
    for ch in s:
        c = ord(ch)
        if c < 0x20 or c > 0x7e or ch == '"' or ch == "\\":
            break
    else:
        out.append('"' + s + '"')
        return
    out.append('"')
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
            continue
        c = ord(ch)
        if c < 0x20 or 0x7f < c < 0x10000:
            out.append("\\u%04x" % c)
        elif c >= 0x10000:
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff)))
        else:
            out.append(ch)
    out.append('"')


def _dump(obj, out):
    t = type(obj)
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif t is int:
        out.append(str(obj))
    elif t is str:
        _str(obj, out)
    elif t is list or t is tuple:
        out.append("[")
        first = True
        for v in obj:
            if not first:
                out.append(",")
            first = False
            _dump(v, out)
        out.append("]")
    elif t is dict:
        out.append("{")
        first = True
        for k in sorted(obj):
            if type(k) is not str:
                raise FFError("canon: key %r is not a string" % (k,))
            if not first:
                out.append(",")
            first = False
            _str(k, out)
            out.append(":")
            _dump(obj[k], out)
        out.append("}")
    else:
        raise FFError("canon: can't encode %s" % t.__name__)


def dumps(obj):
    out = []
    _dump(obj, out)
    return "".join(out)

# Canonical JSON: sorted keys, no whitespace, ASCII only -- byte for byte
# what CPython's json.dumps(obj, sort_keys=True, separators=(",", ":"),
# ensure_ascii=True) writes. MicroPython's json has no sort_keys, and the
# node-table hash must match the one the host computes.
#
# dump(obj, write) streams the text in pieces to write() (a hash's update,
# a stream's write), so hashing a catalog never holds the whole text.
# Floats are refused: MicroPython and CPython print some floats differently,
# so hashed data (the catalog) keeps to integers.
from fleetflow.errors import FFError

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
        "\b": "\\b", "\f": "\\f"}


def _plain(s):
    # nothing to escape: printable ASCII without quote or backslash
    for ch in s:
        if ch < " " or ch > "~" or ch == '"' or ch == "\\":
            return False
    return True


def _str(s, write):
    if _plain(s):
        write('"')
        write(s)
        write('"')
        return
    out = ['"']
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
    write("".join(out))


def dump(obj, write):
    """Write obj as canonical JSON, piece by piece, to write(str)."""
    t = type(obj)
    if obj is None:
        write("null")
    elif obj is True:
        write("true")
    elif obj is False:
        write("false")
    elif t is int:
        write(str(obj))
    elif t is str:
        _str(obj, write)
    elif t is list or t is tuple:
        write("[")
        first = True
        for v in obj:
            if not first:
                write(",")
            first = False
            dump(v, write)
        write("]")
    elif t is dict:
        write("{")
        first = True
        for k in sorted(obj):
            if type(k) is not str:
                raise FFError("canon: key %r is not a string" % (k,))
            if not first:
                write(",")
            first = False
            _str(k, write)
            write(":")
            dump(obj[k], write)
        write("}")
    else:
        raise FFError("canon: can't encode %s" % t.__name__)


def dumps(obj):
    out = []
    dump(obj, out.append)
    return "".join(out)

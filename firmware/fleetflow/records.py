# Run records and the bounded buffer that holds them until the agent ships
# them (ff/<dev>/runs). The interpreter stores a compact list per run and
# keeps the messages themselves; the summaries (short reprs) are made only
# when records are taken, off the hot path.
from micropython import const

# Fields of a compact record (a list)
RUN = const(0)
TRIG = const(1)
EXEC = const(2)
STATUS = const(3)
T_MS = const(4)
US = const(5)
ROWS = const(6)    # per executed node: (index, us, out, port, err)
LOGS = const(7)    # (level, row position or None, text)
ERR = const(8)
PROG = const(9)

_OUT_CHARS = const(60)


def summary(out):
    if out is None:
        return None
    s = out if type(out) is str else repr(out)
    return s if len(s) <= _OUT_CHARS else s[:_OUT_CHARS - 3] + "..."


def to_dict(rec):
    """The wire form of a record (docs/device-protocol.md, "Run record")."""
    if type(rec) is dict:
        return rec
    prog = rec[PROG]
    ids = prog.ids if prog else ()
    types = prog.types if prog else ()
    rows = rec[ROWS]
    nodes = []
    for r in rows:
        i = r[0]
        nodes.append({"id": ids[i], "type": types[i], "us": r[1], "out": summary(r[2]),
                      "port": r[3], "err": r[4]})
    logs = []
    for lv, pos, text in rec[LOGS]:
        nid = ids[rows[pos][0]] if pos is not None and pos < len(rows) else None
        logs.append([lv, nid, text])
    return {"run": rec[RUN], "flow": prog.flow if prog else None, "ver": prog.ver if prog else None,
            "exec": rec[EXEC], "trigger": rec[TRIG], "status": rec[STATUS], "t_ms": rec[T_MS],
            "us": rec[US], "nodes": nodes, "logs": logs, "err": rec[ERR]}


class RunBuffer:
    """Bounded FIFO of run records: when full the oldest is dropped and counted."""

    def __init__(self, maxlen=16):
        self.maxlen = maxlen if maxlen > 0 else 1
        self._q = []
        self.dropped = 0

    def __len__(self):
        return len(self._q)

    def append(self, rec):
        if len(self._q) >= self.maxlen:
            self._q.pop(0)
            self.dropped += 1
        self._q.append(rec)

    def take(self, n=None):
        """Remove and return up to n records (all by default), oldest first, as dicts."""
        q = self._q
        if n is None or n >= len(q):
            out, self._q = q, []
        else:
            out, self._q = q[:n], q[n:]
        return [to_dict(r) for r in out]

    def peek(self, n=None):
        q = self._q if n is None else self._q[:n]
        return [to_dict(r) for r in q]

    def clear(self):
        """Drop every buffered record (clear_cache); they count as dropped."""
        n = len(self._q)
        self._q = []
        self.dropped += n
        return n

# Run records and the bounded buffer that holds them until the agent ships
# them (ff/<dev>/runs).
#
# The interpreter's hot path only stores into lists made once per run: the
# tick at which each node finished (`tl`), its output (`outs`), a router's
# port (`ports`). Durations, summaries (short reprs) and the wire form are
# made here, when records are read, off the hot path.
import time
from micropython import const

# A compact record is one list: the tick at which each node finished (None
# when it didn't run), then a header of H fields, read from the end.
H = const(14)
RUN = const(-14)
TRIG = const(-13)
EXEC = const(-12)
STATUS = const(-11)
T_MS = const(-10)
T0 = const(-9)     # tick (us) when the run started
T_END = const(-8)  # tick (us) when it ended
OUTS = const(-7)   # per node: what it passed on (a router: the message it routed)
PORTS = const(-6)  # per node: a router's port (None when the program has no router)
ERRS = const(-5)   # {node index: error text} or None
EXTRA = const(-4)  # repeated runs of a node (fan-in): [(index, us, out, port, err)] or None
LOGS = const(-3)   # [(level, node index or None, text)] or None
ERR = const(-2)
PROG = const(-1)

_SPARE = const(2)  # recycled records kept for reuse

_OUT_CHARS = const(60)


def summary(out):
    if out is None:
        return None
    s = out if type(out) is str else repr(out)
    return s if len(s) <= _OUT_CHARS else s[:_OUT_CHARS - 3] + "..."


def node_rows(rec):
    """(index, us, out, port, err) per node run, in execution order.

    A node's time runs from the end of the node before it (or the start of
    the run) to its own end, so it includes the hand-over; the first run of a
    fan-in node is timed that way, its repeats by themselves.
    """
    outs = rec[OUTS]
    ports = rec[PORTS]
    errs = rec[ERRS] or {}
    prog = rec[PROG]
    mods = prog.mods if prog else ()
    rows = []
    prev = rec[T0]
    for i in range(len(rec) - H):
        t = rec[i]
        if t is None:
            continue
        out = outs[i]
        err = errs.get(i)
        if err is not None:
            port = None
        elif mods[i].PORTS > 1:
            port = ports[i]
        else:
            port = None if out is None or type(out) is str else 0
        rows.append((i, time.ticks_diff(t, prev), out, port, err))
        prev = t
    if rec[EXTRA]:
        rows.extend(rec[EXTRA])
    return rows


def to_dict(rec):
    """The wire form of a record (docs/device-protocol.md, "Run record").

    A compact record may be reused once it leaves the RunBuffer: convert it
    before then."""
    if type(rec) is dict:
        return rec
    prog = rec[PROG]
    ids = prog.ids if prog else ()
    types = prog.types if prog else ()
    nodes = []
    for i, us, out, port, err in node_rows(rec):
        nodes.append({"id": ids[i], "type": types[i], "us": us, "out": summary(out),
                      "port": port, "err": err})
    logs = []
    for lv, i, text in rec[LOGS] or ():
        logs.append([lv, ids[i] if i is not None else None, text])
    return {"run": rec[RUN], "flow": prog.flow if prog else None, "ver": prog.ver if prog else None,
            "exec": rec[EXEC], "trigger": rec[TRIG], "status": rec[STATUS], "t_ms": rec[T_MS],
            "us": time.ticks_diff(rec[T_END], rec[T0]), "nodes": nodes, "logs": logs, "err": rec[ERR]}


def write_json(rec, write):
    """Write the wire form of a record as JSON, piece by piece, to write(str):
    what json.dumps(to_dict(rec)) says, without building the dicts first."""
    import json
    d = json.dumps
    if type(rec) is dict:
        write(d(rec))
        return
    prog = rec[PROG]
    ids = prog.ids if prog else ()
    write('{"run":%d,"flow":' % rec[RUN])
    write(d(prog.flow if prog else None))
    write(',"ver":')
    write(d(prog.ver if prog else None))
    write(',"exec":')
    write(d(rec[EXEC]))
    write(',"trigger":')
    write(d(rec[TRIG]))
    write(',"status":"%s","t_ms":' % rec[STATUS])
    write(d(rec[T_MS]))
    write(',"us":%d,"nodes":[' % time.ticks_diff(rec[T_END], rec[T0]))
    first = True
    for i, us, out, port, err in node_rows(rec):
        write('{"id":' if first else ',{"id":')
        first = False
        write(d(ids[i]))
        write(',"type":"%s","us":%d,"out":' % (prog.mods[i].TYPE, us))
        write(d(summary(out)))
        write(',"port":')
        write(d(port))
        write(',"err":')
        write(d(err))
        write("}")
    write('],"logs":[')
    first = True
    for lv, i, text in rec[LOGS] or ():
        write('["%s",' % lv if first else ',["%s",' % lv)
        first = False
        write(d(ids[i] if i is not None else None))
        write(",")
        write(d(text))
        write("]")
    write('],"err":')
    write(d(rec[ERR]))
    write("}")


_NONES = {}


def _nones(n):
    t = _NONES.get(n)
    if t is None:
        t = _NONES[n] = (None,) * n
    return t


def new_record(n, routers):
    """An empty compact record for a program of n nodes."""
    rec = [None] * (n + H)
    rec[OUTS] = [None] * n
    if routers:
        rec[PORTS] = [None] * n
    return rec


class RunBuffer:
    """Bounded FIFO of run records: when full the oldest is dropped and counted.

    Records that leave (taken or dropped) are kept as spares for the
    interpreter to reuse, so a steady flow allocates no record lists.
    """

    def __init__(self, maxlen=16):
        self.maxlen = maxlen if maxlen > 0 else 1
        self._q = []
        self._spare = []
        self.dropped = 0

    def _recycle(self, rec):
        # let go of the messages now; the lists wait for the next run
        if type(rec) is list and len(self._spare) < _SPARE and rec[OUTS] is not None:
            outs = rec[OUTS]
            outs[0:len(outs)] = _nones(len(outs))
            rec[EXTRA] = rec[LOGS] = rec[ERRS] = None
            self._spare.append(rec)

    def __len__(self):
        return len(self._q)

    def append(self, rec):
        q = self._q
        if len(q) >= self.maxlen:
            self._recycle(q.pop(0))
            self.dropped += 1
        q.append(rec)

    def take(self, n=None):
        """Remove and return up to n records (all by default), oldest first, as dicts."""
        q = self._q
        if n is None or n >= len(q):
            out, self._q = q, []
        else:
            out, self._q = q[:n], q[n:]
        dicts = [to_dict(r) for r in out]
        for r in out:
            self._recycle(r)
        return dicts

    def peek_json(self, n=None):
        """peek(n) as JSON text, made without the dicts (less heap on a device)."""
        parts = ["["]
        q = self._q if n is None else self._q[:n]
        for k in range(len(q)):
            if k:
                parts.append(",")
            write_json(q[k], parts.append)
        parts.append("]")
        return "".join(parts)

    def peek(self, n=None):
        """Up to n records (all by default), oldest first, as dicts; they stay."""
        q = self._q if n is None else self._q[:n]
        return [to_dict(r) for r in q]

    def clear(self):
        """Drop every buffered record (clear_cache); they count as dropped."""
        n = len(self._q)
        self._q = []
        self.dropped += n
        return n

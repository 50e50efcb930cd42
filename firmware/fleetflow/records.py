# Run records and the bounded buffer that holds them until the agent ships
# them (ff/<dev>/runs). Their wire form is made in fleetflow/record_wire.py.
#
# The interpreter's hot path only stores into lists made once per run: the
# tick at which each node finished (`tl`), its output (`outs`, for a router
# the port it took, and the message it routed when that came through the inbox). Durations, summaries (short reprs) and the wire form are
# made here, when records are read, off the hot path.
from micropython import const

# A compact record is one list: the tick at which each node finished (None
# when it didn't run), then a header of H fields, read from the end.
H = const(14)
RUN = const(-14)
TRIG = const(-13)
EXEC = const(-12)
STATUS = const(-11)  # None in an interpreter's records: failed when ERR is set
T_MS = const(-10)
T0 = const(-9)     # tick (us) when the run started
T_END = const(-8)  # tick (us) when it ended
OUTS = const(-7)   # per node: what it passed on (a router: the port it took); with
                   # routers n more: at n + i the message router i routed when it came
                   # through the inbox (else it is the output of the node before)
PORTS = const(-6)  # unused (None)
ERRS = const(-5)   # {node index: error text} or None
EXTRA = const(-4)  # repeated runs of a node (fan-in): [(index, us, out, port, err)] or None
LOGS = const(-3)   # [(level, node index or None, text)] or None
ERR = const(-2)
PROG = const(-1)

_SPARE = const(2)  # recycled records kept for reuse

def to_dict(rec):
    """The wire form of a record (docs/device-protocol.md, "Run record"); the
    code lives in fleetflow/record_wire.py, loaded when first needed.
    A compact record may be reused once it leaves the RunBuffer: convert it
    before then."""
    if type(rec) is dict:
        return rec
    from fleetflow.record_wire import to_dict as wire
    return wire(rec)


_NONES = {}


def nones(n):
    """(None,) * n, made once per n: what clears a recycled record's ticks."""
    t = _NONES.get(n)
    if t is None:
        t = _NONES[n] = (None,) * n
    return t


def record(run_no, trig, exec_id, status, now_ms, err, prog):
    """A record of a run that ran no node (refused overrides, a cancel, a
    run the runner could not even start): it took no time (T0 = T_END)."""
    return [run_no, trig, exec_id, status, now_ms, 0, 0, None, None, None, None, None, err, prog]


def new_record(n, routers):
    """An empty compact record for a program of n nodes."""
    rec = [None] * (n + H)
    rec[OUTS] = [None] * (2 * n if routers else n)
    return rec


class RunBuffer:
    """Bounded FIFO of run records: when full the oldest is dropped and counted.

    Records that leave (taken or dropped) are kept as spares for the
    interpreter to reuse, so a steady flow allocates no record lists.
    """

    def __init__(self, maxlen=16):
        self.maxlen = maxlen if maxlen > 0 else 1
        self.q = []            # the records, oldest first (fleetflow.runner appends here)
        self.spare = []        # records that left, for the interpreter's next runs
        self.dropped = 0

    def recycle(self, rec):
        """Keep a record that left as a spare (fleetflow.runner takes them)."""
        # an interpreter's record (it has outputs) waits for that
        # interpreter's next run; its header fields that runs set only
        # sometimes go back to None
        if type(rec) is list and len(self.spare) < _SPARE and rec[OUTS] is not None:
            rec[EXTRA] = rec[LOGS] = rec[ERRS] = rec[ERR] = rec[EXEC] = None
            self.spare.append(rec)

    def __len__(self):
        return len(self.q)

    def append(self, rec):
        q = self.q
        if len(q) >= self.maxlen:
            self.recycle(q.pop(0))
            self.dropped += 1
        q.append(rec)

    def take(self, n=None):
        """Remove and return up to n records (all by default), oldest first, as dicts."""
        q = self.q
        if n is None or n >= len(q):
            out, self.q = q, []
        else:
            out, self.q = q[:n], q[n:]
        dicts = [to_dict(r) for r in out]
        for r in out:
            self.recycle(r)
        return dicts

    def peek_json(self, n=None):
        """peek(n) as JSON text, made without the dicts (less heap on a device)."""
        from io import StringIO
        buf = StringIO(512)  # preallocated: growing it reallocates per write
        self.write_json(n, buf.write)
        return buf.getvalue()

    def write_json(self, n, write):
        """Write peek(n) as JSON to write(str), piece by piece."""
        write("[")
        for k in range(len(self.q) if n is None else min(n, len(self.q))):
            if k:
                write(",")
            self.write_one(k, write)
        write("]")

    def write_one(self, k, write):
        """Write the k-th oldest record's wire form as JSON to write(str)."""
        from fleetflow.record_wire import write_json
        write_json(self.q[k], write)

    def discard(self, n):
        """Drop the n oldest records (shipped: peek_json then discard); not
        counted as dropped."""
        q = self.q
        out, self.q = q[:n], q[n:]
        for r in out:
            self.recycle(r)

    def peek(self, n=None):
        """Up to n records (all by default), oldest first, as dicts; they stay."""
        q = self.q if n is None else self.q[:n]
        return [to_dict(r) for r in q]

    def clear(self):
        """Drop every buffered record (clear_cache); they count as dropped."""
        n = len(self.q)
        self.q = []
        self.dropped += n
        return n

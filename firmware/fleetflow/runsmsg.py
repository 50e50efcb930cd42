# The agent's ff/<dev>/runs messages: run records as JSON, written from the
# compact records (fleetflow.records) into one buffer the agent allocates at
# boot. Its own module: the interpreter alone (the firmware bench, the local
# demo) never ships runs and doesn't pay for this code.
from micropython import const


class _Full(Exception):
    pass


class MsgBuf:
    """A message buffer allocated once (at boot, while big blocks are still
    free) and written again for every message: on a long-running device's
    fragmented heap a fresh 2 KB block is often not there to be had."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0

    def write(self, s):
        b = s.encode() if type(s) is str else s
        end = self.n + len(b)
        if end > len(self.buf):
            raise _Full()
        self.mv[self.n:end] = b
        self.n = end


_TAIL = const(40)  # room kept for the message's closing `],"dropped":N}`


def runs_message(recs, dev, out, max_bytes, max_n):
    """(body, k): a ff/<dev>/runs message of the k oldest records (at least
    one, at most max_n, no more once the body passes max_bytes), written into
    `out` (a MsgBuf) straight from the compact records. A first record too
    big for `out` gets a message of its own, made in a growing buffer."""
    import json
    w = out.write
    out.n = 0
    k = 0
    n = min(max_n, len(recs))
    cap = len(out.buf) - _TAIL
    try:
        w('{"dev":')
        w(json.dumps(dev))
        w(',"runs":[')
        while k < n and (k == 0 or out.n < max_bytes):
            mark = out.n
            if k:
                w(",")
            recs.write_one(k, w)
            if out.n > cap:
                raise _Full()
            k += 1
    except _Full:
        if k == 0:
            from io import StringIO
            big = StringIO()
            big.write('{"dev":%s,"runs":[' % json.dumps(dev))
            recs.write_one(0, big.write)
            big.write('],"dropped":%d}' % recs.dropped)
            return big.getvalue(), 1
        out.n = mark
    w('],"dropped":%d}' % recs.dropped)
    return out.mv[:out.n], k


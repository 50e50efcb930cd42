# The agent's ff/<dev>/runs messages: run records as JSON, written straight
# from the compact records (fleetflow.records) onto the link, never held
# whole. A 20-node record is ~2 KB of JSON; a message made in one buffer
# needs that block contiguous, and on a long-running device's fragmented
# heap it often isn't there. Instead the message is written twice through
# one small buffer: once to count its bytes (MQTT wants the length first),
# once onto the socket. Its own module: the interpreter alone (the firmware
# bench, the local demo) never ships runs and doesn't pay for this code.
from micropython import const

PIECE = const(256)  # the buffer the message goes through, piece by piece


class Pieces:
    """write(str|bytes) into a fixed buffer; each full buffer goes to
    sink(memoryview) (a long piece goes on its own)."""

    def __init__(self, buf, sink):
        self.mv = memoryview(buf)
        self.n = 0
        self.sink = sink

    def write(self, s):
        b = s.encode() if type(s) is str else s
        end = self.n + len(b)
        if end > len(self.mv):
            self.flush()
            end = len(b)
            if end > len(self.mv):
                self.sink(b)
                return
        self.mv[self.n:end] = b
        self.n = end

    def flush(self):
        if self.n:
            self.sink(self.mv[:self.n])
            self.n = 0


class RunsBody:
    """The body of one ff/<dev>/runs message: the k oldest records of `recs`
    (at least one, at most max_n, no more once the body passes max_bytes).
    len() is its size in bytes; emit(write) writes it, in pieces, to
    write(buffer) -- the link hands it the socket's write."""

    def __init__(self, recs, dev, buf, max_bytes, max_n, clock=""):
        # clock: more fields of the message, ending in a comma (fleetflow.net stamp)
        import json
        self.recs = recs
        self.buf = buf
        self.head = '{"dev":%s,%s"runs":[' % (json.dumps(dev), clock)
        self.size = 0
        p = Pieces(buf, self._count)
        p.write(self.head)
        n = min(max_n, len(recs))
        k = 0
        while k < n and (k == 0 or self.size + p.n < max_bytes):
            if k:
                p.write(",")
            recs.write_one(k, p.write)
            k += 1
        p.write(self._tail())
        p.flush()
        self.k = k

    def _count(self, piece):
        self.size += len(piece)

    def _tail(self):
        return '],"dropped":%d}' % self.recs.dropped

    def __len__(self):
        return self.size

    def emit(self, write):
        p = Pieces(self.buf, write)
        p.write(self.head)
        for k in range(self.k):
            if k:
                p.write(",")
            self.recs.write_one(k, p.write)
        p.write(self._tail())
        p.flush()

    def whole(self):
        """The body as one bytes (tests; a device never needs it)."""
        out = []
        self.emit(lambda piece: out.append(bytes(piece)))
        return b"".join(out)

# A chunked program transfer (docs/device-protocol.md, "chunk").
#
# The envelope of a stage/deploy announces `chunks` and `chunk_size`; chunks
# then arrive as separate commands and go straight into the idle slot's file
# (SlotStore.stage_write), never held whole in RAM. Rules:
#  - only chunk `next` is written; a duplicate (i < next) and a chunk past
#    `next` (reordered, or one went missing) are refused (`rejected`, with
#    the reason) and the ack's `next` says which chunk the device wants, so
#    the cloud re-sends from there; nothing already written is touched;
#  - every chunk but the last is exactly `chunk_size` bytes;
#  - the transfer lives in RAM across reconnects: the cloud re-sends the
#    envelope after a reconnect and the device answers with the `next` it
#    already has. After a reboot the transfer starts again from chunk 0.
from fleetflow.errors import FFError

WRITE = "write"


class Transfer:
    def __init__(self, cmd, hdr, chunks, chunk_size):
        if type(chunks) is not int or type(chunk_size) is not int or chunks < 1 or chunk_size < 1:
            raise FFError("bad envelope: chunks and chunk_size must be positive integers")
        if chunks * chunk_size < hdr["size"] or (chunks - 1) * chunk_size >= hdr["size"]:
            raise FFError("bad envelope: %d chunks of %d can't hold %d bytes" % (chunks, chunk_size, hdr["size"]))
        self.cmd = cmd          # the stage/deploy command (dict) that opened it
        self.hdr = hdr
        self.chunks = chunks
        self.chunk_size = chunk_size
        self.next = 0

    def same(self, hdr):
        return hdr["sha"] == self.hdr["sha"] and hdr["seq"] == self.hdr["seq"]

    def offer(self, i, data):
        """WRITE when chunk i is the one wanted; FFError (the reason) when refused."""
        if type(i) is not int or i < 0 or i >= self.chunks:
            raise FFError("chunk %s out of range 0..%d" % (i, self.chunks - 1))
        if i < self.next:
            raise FFError("duplicate chunk %d: have 0..%d" % (i, self.next - 1))
        if i > self.next:
            raise FFError("out of order or missing: want chunk %d, got %d" % (self.next, i))
        last = i == self.chunks - 1
        want = self.hdr["size"] - i * self.chunk_size if last else self.chunk_size
        if len(data) != want:
            raise FFError("truncated: chunk %d has %d bytes, want %d" % (i, len(data), want))
        return WRITE

    def wrote(self):
        self.next += 1
        return self.next == self.chunks

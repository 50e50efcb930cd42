# Power-cut fault injection for the A/B slot proof (tools/mpy/powercut_sweep.py,
# tests/agent): a block device wrapper that cuts the power after the N-th
# write. Host-side test harness only: tools/device/bundle.py never puts it in a
# board's bundle (it is no part of what a device runs).
from micropython import const

_IOCTL_SYNC = const(3)
_IOCTL_ERASE = const(6)
_EIO = const(5)


class FaultBlockDev:
    """Wraps a block device and cuts the power after the N-th write.

    Every program (writeblocks) and every erase counts as one write. Write
    number `cut_after` + 1 fails with EIO (`dead` turns True), and so does
    every write after it.
    lose_unsynced=True adds a volatile write cache: writes reach the inner
    device only on ioctl(SYNC), and whatever was not synced when the power
    went is lost. (LittleFS syncs at the end of each commit.)
    cut_after=None never cuts; `writes` counts them either way.
    """

    def __init__(self, inner, cut_after=None, lose_unsynced=False):
        self.inner = inner
        self.cut_after = cut_after
        self.lose_unsynced = lose_unsynced
        self.writes = 0
        self.dead = False
        self.lost = 0     # unsynced writes that died with the power
        self._cache = []  # pending (block, bytes, offset) when lose_unsynced

    def _cut(self):
        # True when this write does not happen. A dead device answers -EIO
        # rather than raising: LittleFS turns it into an OSError of the file
        # operation in progress, and a file closed later by the garbage
        # collector (heap locked, so nothing may allocate) fails quietly.
        if self.dead:
            return True
        if self.cut_after is not None and self.writes >= self.cut_after:
            self.dead = True
            self.lost = len(self._cache)
            self._cache = []  # the volatile cache dies with the power
            return True
        self.writes += 1
        return False

    def readblocks(self, n, buf, off=0):
        self.inner.readblocks(n, buf, off)
        if self._cache:
            # Reads see the not-yet-synced writes, in the order made.
            bs = self.inner.bs
            start = n * bs + off
            end = start + len(buf)
            for blk, data, boff in self._cache:
                ws = blk * bs + boff
                we = ws + len(data)
                lo = max(ws, start)
                hi = min(we, end)
                if lo < hi:
                    buf[lo - start:hi - start] = data[lo - ws:hi - ws]

    def writeblocks(self, n, buf, off=None):
        if self._cut():
            return -_EIO
        if off is None:
            off = 0
        if self.lose_unsynced:
            self._cache.append((n, bytes(buf), off))
        else:
            self.inner.writeblocks(n, buf, off)

    def _flush(self):
        for blk, data, boff in self._cache:
            self.inner.writeblocks(blk, data, boff)
        self._cache = []

    def ioctl(self, op, arg):
        if op == _IOCTL_ERASE:
            if self._cut():
                return -_EIO
            if self.lose_unsynced:
                self._cache.append((arg, b"\xff" * self.inner.bs, 0))  # erased flash reads 0xff
                return 0
            return self.inner.ioctl(op, arg)
        if op == _IOCTL_SYNC:
            if self.dead:
                return -_EIO
            self._flush()
        return self.inner.ioctl(op, arg)

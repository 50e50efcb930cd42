# Block devices for vfs.VfsLfs2 on the simulated device (and the power-cut proof).
#
# The simulated device mounts LittleFS v2 on a file that stands in for the
# filesystem partition of a 4 MB ESP32: MicroPython's esp32 partition table
# (partitions-4MiB.csv) gives the "vfs" partition 0x200000 bytes (2 MB), and
# the flash erases in 4096-byte sectors, so 512 blocks of 4096 bytes.
# On a board the board's own filesystem is used and this module is not loaded.
#
# The extended block protocol (docs.micropython.org, "vfs" / AbstractBlockDev):
#   readblocks(block, buf, offset)   read len(buf) bytes at block*bs+offset
#   writeblocks(block, buf, offset)  program bytes; the block was erased first
#   ioctl(6, block)                  erase one block
# LittleFS drives it with offsets and explicit erases.
from micropython import const

BLOCK_SIZE = const(4096)
BLOCK_COUNT = const(512)

_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)
_EIO = const(5)
_BLANK = const(256)  # divides every block size LittleFS is given here


class FileBlockDev:
    """A LittleFS block device backed by a host file.

    cow=True never writes the file: changed blocks live in RAM (copy on
    write), so the power-cut sweep can snapshot and restore a whole
    filesystem for the price of the few blocks an operation touched.
    """

    def __init__(self, path, block_count=BLOCK_COUNT, block_size=BLOCK_SIZE, cow=False):
        self.path = path
        self.bs = block_size
        self.count = block_count
        self.cow = cow
        self._dirty = {}
        # An erased piece, made once and written over a block to erase it:
        # an erase allocates nothing, and the piece is not a whole 4 KB block
        # (the device heap would hold it for good; a board's flash driver
        # erases in C and holds none).
        self._blank = b"\xff" * _BLANK
        try:
            self._f = open(path, "r+b")
        except OSError:
            self._f = open(path, "w+b")
        self._f.seek(0, 2)
        if self._f.tell() < block_size * block_count:
            # Erased flash reads as 0xff; grow the file in block-sized pieces.
            while self._f.tell() < block_size * block_count:
                self._f.write(self._blank)
            self._f.flush()

    def close(self):
        self._f.close()

    # -- copy-on-write snapshots (sweep only) --
    def snapshot(self):
        return {k: bytes(v) for k, v in self._dirty.items()}

    def restore(self, snap):
        self._dirty = {k: bytearray(v) for k, v in snap.items()}

    def _block(self, n):
        # The block's bytes as a mutable buffer (cow mode).
        b = self._dirty.get(n)
        if b is None:
            self._f.seek(n * self.bs)
            b = bytearray(self._f.read(self.bs))
            self._dirty[n] = b
        return b

    def readblocks(self, n, buf, off=0):
        if not self._dirty:
            # The device's path: the file is the partition, contiguous, so one
            # seek and one readinto, allocating nothing (LittleFS may call us
            # from a file's finalizer, while the heap is locked).
            self._f.seek(n * self.bs + off)
            self._f.readinto(buf)
            return
        end = off + len(buf)
        mv = memoryview(buf)
        pos = 0
        while pos < len(buf):
            blk = n + (off + pos) // self.bs
            boff = (off + pos) % self.bs
            take = min(self.bs - boff, end - off - pos)
            d = self._dirty.get(blk)
            if d is not None:
                mv[pos:pos + take] = d[boff:boff + take]
            else:
                self._f.seek(blk * self.bs + boff)
                self._f.readinto(mv[pos:pos + take])
            pos += take

    def writeblocks(self, n, buf, off=None):
        if off is None:
            # Basic protocol: whole blocks, erase implied.
            off = 0
        if self.cow:
            mv = memoryview(buf)
            pos = 0
            while pos < len(buf):
                blk = n + (off + pos) // self.bs
                boff = (off + pos) % self.bs
                take = min(self.bs - boff, len(buf) - pos)
                self._block(blk)[boff:boff + take] = mv[pos:pos + take]
                pos += take
        else:
            self._f.seek(n * self.bs + off)
            self._f.write(buf)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.count
        if op == _IOCTL_BLOCK_SIZE:
            return self.bs
        if op == _IOCTL_ERASE:
            for off in range(0, self.bs, _BLANK):
                self.writeblocks(arg, self._blank, off)
            return 0
        if op == _IOCTL_SYNC:
            if not self.cow:
                self._f.flush()
            return 0
        return 0

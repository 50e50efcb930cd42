# What the agent lets in: the envelope's signature and the program itself.
#
# The checks run in the order docs/device-protocol.md gives (signature, seq,
# size, sha, program) and each failure is an FFError whose text is the
# `reason` of the `rejected` ack.
import hashlib
from binascii import hexlify, unhexlify
from fleetflow.errors import FFError

_HDR_KEYS = ("flow", "ver", "seq", "size", "sha", "sig")


def header_of(env):
    """The slot header (flow, ver, seq, size, sha, sig) of an envelope."""
    try:
        hdr = {k: env[k] for k in _HDR_KEYS}
    except KeyError as e:
        raise FFError("unsigned: envelope lacks %s" % e.args[0])
    if not isinstance(hdr["seq"], int) or not isinstance(hdr["size"], int):
        raise FFError("bad envelope: seq and size must be integers")
    if not isinstance(hdr["sig"], str) or not hdr["sig"]:
        raise FFError("unsigned")
    return hdr


def make_checker(dev, key_hex):
    """check(header) raises FFError unless the header carries dev's signature."""
    key = unhexlify(key_hex)

    def check(hdr):
        msg = "ff1|%s|%d|%s|%d|%s" % (dev, hdr["seq"], hdr["flow"], hdr["ver"], hdr["sha"])
        want = hexlify(_hmac_sha256(key, msg.encode()))
        got = hdr["sig"].encode() if type(hdr["sig"]) is str else hdr["sig"]
        if not _same(want, got):
            raise FFError("bad signature (unsigned, wrong key, or altered envelope)")

    return check


def _hmac_sha256(key, msg):
    # RFC 2104 over hashlib.sha256 (block size 64)
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    k = bytearray(64)
    k[:len(key)] = key
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5c for b in k))
    outer.update(inner.digest())
    return outer.digest()


def _same(a, b):
    # constant-time compare: the time doesn't say how much of a guess was right
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def check_sha(prog, hdr):
    if len(prog) != hdr["size"]:
        raise FFError("truncated: %d of %d bytes" % (len(prog), hdr["size"]))
    if hexlify(hashlib.sha256(prog).digest()).decode() != hdr["sha"]:
        raise FFError("corrupted: sha mismatch")


def check_envelope(hdr, check_sig, accepted_seq, max_bytes, inline=False):
    """Signature, then seq, then size; the sha is checked over the bytes."""
    check_sig(hdr)
    if not inline and hdr["seq"] <= accepted_seq:
        raise FFError("replayed or older seq: %d <= %d" % (hdr["seq"], accepted_seq))
    if hdr["size"] > max_bytes:
        raise FFError("oversized: %d > %d bytes" % (hdr["size"], max_bytes))
    if hdr["size"] <= 0:
        raise FFError("truncated: empty program")


def load(prog, board, table):
    """Parse and check the program bytes against the board and node table."""
    from fleetflow.program import load_program
    try:
        return load_program(prog, table, board)
    except FFError:
        raise
    except Exception as e:  # a bad program must never crash the device
        raise FFError("bad program: %s: %s" % (type(e).__name__, e))


def make_runner(board, sim_config=None):
    """run(header, prog) loads the program and runs it once (power-cut proof)."""
    from fleetflow.nodetable import load_table
    from fleetflow.hal import get_hal
    from fleetflow.interp import Interpreter
    table = load_table(board["nodes"])
    hal = get_hal(board["name"], sim_config or {})

    def run(hdr, prog):
        p = load(prog, board, table)
        it = Interpreter(p, hal)
        rec = it.run_now()
        it.stop()
        if rec.get("status") != "completed":
            raise FFError("run failed: %s" % rec.get("err"))

    return run

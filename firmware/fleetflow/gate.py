# What the agent lets in: the envelope's signature and the program itself.
#
# The checks run in the order docs/device-protocol.md gives (signature, seq,
# size, sha, program) and each failure is an FFError whose text is the
# `reason` of the `rejected` ack. The signature and digest checks are
# fleetflow.verify's; the seq check is here, since only the agent knows the
# last accepted one.
#
# Cold code: the agent imports it for a command or a slot switch, then lets
# it go (fleetflow.cold); the signature code (fleetflow.verify) is
# imported only by the checks that use it.
import gc
import hashlib
from binascii import unhexlify
from fleetflow.cold import unload
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
        from fleetflow import verify
        verify.check_signature(hdr, key, dev)

    return check


def check_sha(prog, hdr):
    from fleetflow import verify
    verify.check_digest(hdr, verify.hexdigest(hashlib.sha256(prog)), len(prog))


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


def check_staged(slots, hdr, board, table):
    """Finish the stage in progress (SlotStore.stage_finish): (Program, None)
    once its digest and its program check out and the slot is committed,
    else (None, the reason); the stage is aborted then."""
    box = []

    def validate(prog):  # the staged file, open at the program
        # The signature and digests are checked by now: let their code go
        # before the loader comes in (this is a deploy's heap peak), and the
        # run records' wire code too (the next flush reloads it).
        unload("verify", "hmac256", "record_wire")
        gc.collect()
        p = load(prog, board, table)
        if p.flow != hdr["flow"] or p.ver != hdr["ver"]:
            raise FFError("corrupted: program is %s v%s, envelope says %s v%s" % (
                p.flow, p.ver, hdr["flow"], hdr["ver"]))
        box.append(p)

    try:
        slots.stage_finish(validate)
        return box[0], None
    except FFError as e:
        return None, e.args[0]
    except MemoryError:
        box = None
        gc.collect()
        return None, "out of memory checking the program"
    except Exception as e:  # a bad program must never crash the device
        return None, "error: %s: %s" % (type(e).__name__, e)


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
